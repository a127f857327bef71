"""Checkpoint loading/saving for backbones (official ``load_pretrained_weights``) and small helpers.

Accepted inputs of :func:`load_pretrained_weights`:
- an official training export ``teacher_checkpoint.pth`` =
  ``{"teacher": {"backbone.*", "dino_head.*", ...}}`` (``checkpoint_key="teacher"``), or a flat dict
  with ``teacher.backbone.*`` keys;
- a full training checkpoint ``{"model": {"teacher.backbone.*", ...}, "optimizer": ...}``;
- a hub-style plain backbone ``state_dict``; DDP ``module.`` prefixes;
- ``.safetensors`` files written by :func:`save_backbone_safetensors`;
- either block layout (``blocks.N.*`` or chunked ``blocks.C.N.*``): converted to the model's.
"""

import logging
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from torch import Tensor, nn

from utils.atomic import atomic_path

logger = logging.getLogger("dinov2")

_CHUNKED = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.*)$")
_FLAT = re.compile(r"^blocks\.(\d+)\.(\D.*)$")
_MODULE = re.compile(r"(^|\.)module\.")


class CheckpointMismatchError(RuntimeError):
    """Raised by a strict load; the message has one line per problem key."""


def _read_state_dict(pretrained_weights: str | os.PathLike) -> dict:
    path = str(pretrained_weights)
    if urlparse(path).scheme in ("http", "https"):
        return torch.hub.load_state_dict_from_url(path, map_location="cpu", weights_only=True)
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"pretrained weights not found: {path} (check MODEL.WEIGHTS / --pretrained-weights)"
        )
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, pickle with non-tensor objects, ...
        raise RuntimeError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e


def select_state(checkpoint: dict, key: str | None) -> dict[str, Tensor]:
    """The ``key`` part (``"teacher"``, ``"student"``) of a checkpoint, its prefix stripped.

    ``checkpoint[key]`` of an export (``{"teacher": {"backbone.…"}}``), else the ``key.*`` entries
    of a full training checkpoint's ``model``
    (``{"model": {"teacher.backbone.…"}, "optimizer": …}``) or of a flat dict; the (model) dict
    itself when it has no such part or ``key`` is None.
    """
    if key not in checkpoint and isinstance(checkpoint.get("model"), dict):
        checkpoint = checkpoint["model"]
    if key is not None and isinstance(checkpoint.get(key), dict):
        logger.info("Take key %s in provided checkpoint dict", key)
        return checkpoint[key]
    if key is not None and any(k.startswith(key + ".") for k in checkpoint):
        n = len(key) + 1
        return {k[n:]: v for k, v in checkpoint.items() if k.startswith(key + ".")}
    return checkpoint


def _select_backbone(state_dict: dict, checkpoint_key: str | None) -> dict[str, Tensor]:
    """Descend into ``checkpoint_key`` and keep the backbone tensors, prefixes stripped."""
    state_dict = select_state(state_dict, checkpoint_key)
    # DDP wraps modules as `module.`, at the top or below `backbone.`: drop it wherever it sits.
    state_dict = {_MODULE.sub(r"\1", k): v for k, v in state_dict.items()}
    if any(k.startswith("backbone.") for k in state_dict):
        # Meta-architecture layout: heads (dino_head.*, ibot_head.*) are not part of the backbone.
        state_dict = {
            k[len("backbone.") :]: v for k, v in state_dict.items() if k.startswith("backbone.")
        }
    return state_dict


def convert_block_layout(state_dict: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Rename ``blocks.*`` keys between the flat (``blocks.N``) and chunked (``blocks.C.N``)
    layouts so that they follow ``model``'s layout; other keys are untouched."""
    chunk_of: dict[int, int] = {}  # global block index -> chunk index in the model
    for k in model.state_dict():
        m = _CHUNKED.match(k)
        if m:
            chunk_of[int(m.group(2))] = int(m.group(1))
    out = {}
    for k, v in state_dict.items():
        m_chunked, m_flat = _CHUNKED.match(k), _FLAT.match(k)
        if m_chunked:
            i, rest = int(m_chunked.group(2)), m_chunked.group(3)
        elif m_flat:
            i, rest = int(m_flat.group(1)), m_flat.group(2)
        else:
            out[k] = v
            continue
        out[f"blocks.{chunk_of[i]}.{i}.{rest}" if i in chunk_of else f"blocks.{i}.{rest}"] = v
    return out


def _mismatch_report(
    state_dict: dict[str, Tensor], model: nn.Module
) -> tuple[list[str], list[str]]:
    """Return (problem lines, keys whose shapes differ)."""
    expected = model.state_dict()
    lines = [
        f"missing key: {k} {tuple(v.shape)}" for k, v in expected.items() if k not in state_dict
    ]
    lines += [
        f"unexpected key: {k} {tuple(v.shape)}" for k, v in state_dict.items() if k not in expected
    ]
    bad_shapes = [
        k for k, v in state_dict.items() if k in expected and v.shape != expected[k].shape
    ]
    for k in bad_shapes:
        hint = (
            " (build the model with the checkpoint's img_size/patch_size)"
            if k == "pos_embed"
            else ""
        )
        shapes = f"checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        lines.append(f"shape mismatch: {k} {shapes}{hint}")
    return lines, bad_shapes


def load_pretrained_weights(
    model: nn.Module,
    pretrained_weights: str | os.PathLike,
    checkpoint_key: str | None,
    strict: bool = True,
) -> list[str]:
    """Load backbone weights into ``model`` (official name and first three arguments).

    With ``strict`` (default) any missing, unexpected or shape-mismatched key raises
    :class:`CheckpointMismatchError` naming the file and listing one problem per line;
    otherwise the problems are logged as warnings and the matching tensors are loaded.
    Returns the list of problem lines (empty on a clean load).
    """
    state_dict = _select_backbone(_read_state_dict(pretrained_weights), checkpoint_key)
    state_dict = convert_block_layout(state_dict, model)
    problems, bad_shapes = _mismatch_report(state_dict, model)
    if problems and strict:
        raise CheckpointMismatchError(
            f"{pretrained_weights} does not match the model ({len(problems)} problems; "
            f"checkpoint_key={checkpoint_key!r}):\n" + "\n".join(problems)
        )
    for line in problems:
        logger.warning("%s: %s", pretrained_weights, line)
    for k in bad_shapes:
        del state_dict[k]
    model.load_state_dict(state_dict, strict=False)
    logger.info(
        "Pretrained weights found at %s and loaded (%d problems)", pretrained_weights, len(problems)
    )
    return problems


def save_backbone_safetensors(
    model: nn.Module, path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write ``model.state_dict()`` as safetensors, atomically (temp file + rename).

    Refuses to replace an existing file unless ``overwrite``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    # safetensors refuses shared/non-contiguous storage: give every tensor its own contiguous copy.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt"})
    return path


class CosineScheduler:
    """Official per-iteration schedule: ``freeze_iters`` zeros, linear warm-up from
    ``start_warmup_value`` to ``base_value``, then cosine to ``final_value``; ``final_value``
    after."""

    def __init__(
        self,
        base_value: float,
        final_value: float,
        total_iters: int,
        warmup_iters: int = 0,
        start_warmup_value: float = 0.0,
        freeze_iters: int = 0,
    ) -> None:
        self.final_value = final_value
        self.total_iters = total_iters
        freeze = np.zeros(freeze_iters)
        warmup = np.linspace(start_warmup_value, base_value, warmup_iters)
        iters = np.arange(total_iters - warmup_iters - freeze_iters)
        cosine = final_value + 0.5 * (base_value - final_value) * (
            1 + np.cos(np.pi * iters / len(iters))
        )
        self.schedule = np.concatenate((freeze, warmup, cosine))
        if len(self.schedule) != total_iters:
            raise ValueError(
                f"freeze {freeze_iters} + warmup {warmup_iters} exceed total_iters {total_iters}"
            )

    def __getitem__(self, it: int) -> float:
        return self.final_value if it >= self.total_iters else float(self.schedule[it])


def has_batchnorms(model: nn.Module) -> bool:
    """True if ``model`` contains BatchNorm/SyncBatchNorm layers (official helper)."""
    bn_types = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
    return any(isinstance(m, bn_types) for m in model.modules())
