"""Full training checkpoints (atomic, pruned, resumable) and teacher exports for evaluation.

A checkpoint ``<output_dir>/model_<iteration:07d>.pth`` holds everything an exact resume needs:
``model`` (student, teacher, loss centres), ``optimizer``, ``grad_scaler``, ``iteration`` (the next
iteration to run), ``schedule_start`` (iteration at which the current schedules started) and the RNG
states of python, numpy and torch of every rank. Files are written to a temp file and renamed, so a
crash never leaves a half-written checkpoint under the final name; a checkpoint that is corrupt
anyway (a truncated copy) is skipped with a warning when resuming. Everything loads with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from dinov2 import distributed
from utils.atomic import atomic_torch_save

logger = logging.getLogger("dinov2")

CHECKPOINT_RE = re.compile(r"^model_(\d{7})\.pth$")
# ``model`` key prefixes of older checkpoints -> today's (the NCT anchor was ``regularizer``).
LEGACY_MODEL_PREFIXES = {"regularizer.": "anchor."}


def capture_rng_state() -> dict[str, Any]:
    """RNG states of this process as tensors and plain values (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, key_tensor, *rest = state["numpy"]
    np.random.set_state((version, key_tensor.numpy().astype(np.uint32), *rest))
    # python's random wants a tuple of ints; the loaded state may hold lists.
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states() -> list[dict[str, Any]]:
    """The RNG state of every rank, in rank order (a one-element list without torch.distributed)."""
    state = capture_rng_state()
    if not distributed.is_enabled():
        return [state]
    states: list[Any] = [None] * distributed.get_global_size()
    dist.all_gather_object(states, state)
    return states


def checkpoint_path(output_dir: str | os.PathLike, iteration: int) -> Path:
    """Where a run saves its full checkpoint after ``iteration`` iterations:
    ``<output_dir>/model_<iteration:07d>.pth`` (matched by :data:`CHECKPOINT_RE`)."""
    return Path(output_dir) / f"model_{iteration:07d}.pth"


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of the checkpoints in ``output_dir``, newest first."""
    found = []
    for p in Path(output_dir).glob("model_*.pth"):
        m = CHECKPOINT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found, reverse=True)


def _legacy_renamed(key: str) -> str:
    for old, new in LEGACY_MODEL_PREFIXES.items():
        if key == old.rstrip(".") or key.startswith(old):
            return new.rstrip(".") + key.removeprefix(old.rstrip("."))
    return key


def upgrade_legacy_keys(ckpt: Any) -> Any:
    """``ckpt`` with the ``model`` keys of :data:`LEGACY_MODEL_PREFIXES` renamed (order kept).

    A checkpoint without legacy keys is returned as it is; a renamed state keeps its
    ``_metadata`` (module versions that ``load_state_dict`` reads), renamed alike."""
    model = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(model, dict) or all(_legacy_renamed(k) == k for k in model):
        return ckpt
    renamed = OrderedDict((_legacy_renamed(k), v) for k, v in model.items())
    metadata = getattr(model, "_metadata", None)
    if metadata is not None:
        renamed._metadata = OrderedDict((_legacy_renamed(k), v) for k, v in metadata.items())
    return {**ckpt, "model": renamed}


def load_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` on CPU, legacy keys renamed (:func:`upgrade_legacy_keys`).

    An unreadable file is a one-line ``ValueError`` naming it."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        # torch's message may advise weights_only=False (runs code from the file): not repeated
        raise ValueError(
            f"cannot read checkpoint {path}: truncated, corrupt or not a PyTorch checkpoint "
            f"({type(e).__name__}); pass a model_<iteration>.pth of a training run"
        ) from None
    return upgrade_legacy_keys(ckpt)


def newest_valid_checkpoint(output_dir: str | os.PathLike) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of ``output_dir`` that loads; unreadable ones are skipped with a
    warning."""
    for _, path in list_checkpoints(output_dir):
        try:
            ckpt = load_checkpoint_file(path)
        except Exception as e:  # truncated zip, bad pickle, ...: any load failure means "not valid"
            logger.warning(
                "skipping checkpoint %s: cannot be loaded (%s)", path, str(e).splitlines()[0][:200]
            )
            continue
        if isinstance(ckpt, dict) and {"model", "iteration"} <= set(ckpt):
            return path, ckpt
        logger.warning("skipping checkpoint %s: not a full training checkpoint", path)
    return None


class Checkpointer:
    """Writes and prunes the full checkpoints of one run; only the main process touches files."""

    def __init__(
        self, output_dir: str | os.PathLike, keep: int = 3, keep_iterations: tuple[int, ...] = ()
    ):
        self.output_dir = Path(output_dir)
        self.keep = max(int(keep), 1)
        self.keep_iterations = set(int(i) for i in keep_iterations)

    def save(self, state: dict[str, Any]) -> Path | None:
        """Write ``state`` (with ``iteration``) as ``model_<iteration>.pth``, then prune old
        checkpoints."""
        rng = gather_rng_states()  # collective: every rank calls save
        if not distributed.is_main_process():
            return None
        path = atomic_torch_save(
            {**state, "rng": rng}, checkpoint_path(self.output_dir, state["iteration"])
        )
        logger.info("checkpoint saved: %s", path)
        self._prune()
        return path

    def _prune(self) -> None:
        for i, (iteration, path) in enumerate(list_checkpoints(self.output_dir)):
            if i >= self.keep and iteration not in self.keep_iterations:
                path.unlink(missing_ok=True)
                logger.info("removed old checkpoint %s", path)


def export_teacher(
    teacher_state: dict[str, torch.Tensor], output_dir: str | os.PathLike, iteration: int
) -> Path | None:
    """``eval/training_<iteration>/teacher_checkpoint.pth`` = ``{"teacher": teacher_state}``
    (official format)."""
    if not distributed.is_main_process():
        return None
    path = Path(output_dir) / "eval" / f"training_{iteration}" / "teacher_checkpoint.pth"
    atomic_torch_save({"teacher": teacher_state}, path)
    logger.info("teacher exported: %s", path)
    return path
