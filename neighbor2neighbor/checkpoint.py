"""Checkpoint files: atomic saves, and loading a UNet from ours or from published weights.

Two kinds of file:

- model files (``model_best.pth``, ``model_last.pth``): ``{"model": state_dict, "arch": {...}}``;
  published Neighbor2Neighbor weights (a bare ``state_dict``, possibly with DataParallel's
  ``module.`` prefix) load too, their architecture read from the weight shapes;
- the training state (``checkpoint.pth``): model, optimizer, scheduler, epoch, RNG states, best
  PSNR.

Everything loads with ``weights_only=True``; a file that is not a Neighbor2Neighbor UNet, or whose
weights are not all finite (a diverged run), gives a one-line :class:`CheckpointError` naming it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from neighbor2neighbor.unet import HEAD_WIDTH, UNet, with_zero_deconv_biases
from utils.atomic import atomic_torch_save


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or of another architecture; the message names it."""


def unet_arch(model: UNet) -> dict[str, Any]:
    """The constructor arguments of ``model``, stored next to its weights."""
    return {
        "in_nc": model.in_nc,
        "out_nc": model.out_nc,
        "n_feature": model.n_feature,
        "blindspot": model.blindspot,
        "zero_last": model.zero_last,
    }


def save_model(model: UNet, path: str | os.PathLike, **extra: Any) -> None:
    """Write a model file (weights on CPU + architecture + ``extra`` metadata such as epoch,
    PSNR)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"model": state, "arch": unet_arch(model), **extra}, path)


def torch_load(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` on CPU; a missing or corrupt file →
    :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors of a corrupt or foreign file
        # torch's own message ends in advice to load with weights_only=False, which would run code
        # from the file: only say what the file is not.
        kind = (
            "truncated or corrupt"
            if isinstance(e, RuntimeError | EOFError)
            else "not a PyTorch checkpoint"
        )
        raise CheckpointError(
            f"cannot read checkpoint {path}: {kind} ({type(e).__name__}); "
            "pass a model_best.pth or published weights"
        ) from None


def _arch_from_weights(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    try:
        enc0, nin_a, nin_c = state["enc_conv0.weight"], state["nin_a.weight"], state["nin_c.weight"]
    except KeyError as e:
        raise CheckpointError(
            f"{path} is not a Neighbor2Neighbor UNet checkpoint: no weight {e.args[0]!r}"
        ) from None
    return {
        "in_nc": enc0.shape[1],
        "out_nc": nin_c.shape[0],
        "n_feature": enc0.shape[0],
        "blindspot": nin_a.shape[0] == 4 * HEAD_WIDTH,
        "zero_last": False,
    }


def load_unet(path: str | os.PathLike) -> UNet:
    """A :class:`UNet` (eval mode, CPU) from a model file, a training state or published weights."""
    path = Path(path)
    obj = torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path} is not a Neighbor2Neighbor UNet checkpoint (holds a {type(obj).__name__})"
        )
    state = obj.get("model", obj)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path} is not a Neighbor2Neighbor UNet checkpoint (no tensor state_dict)"
        )
    state = with_zero_deconv_biases({k.removeprefix("module."): v for k, v in state.items()})
    arch = obj.get("arch") or _arch_from_weights(state, path)
    model = UNet(**arch)
    missing, unexpected = _key_mismatch(model, state)
    if missing or unexpected:
        raise CheckpointError(
            f"{path} is not a Neighbor2Neighbor UNet checkpoint: "
            f"{len(missing)} missing keys (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = next(
            (ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln),
            str(e).splitlines()[0],
        )
        raise CheckpointError(f"{path} does not match the UNet {arch}: {first[:200]}") from None
    bad = next(
        (k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None
    )
    if bad is not None:
        raise CheckpointError(
            f"{path} has non-finite weights (first: {bad}), the run that "
            "wrote it diverged; retrain with a lower n2n.lr"
        )
    return model.eval()


def _key_mismatch(
    model: torch.nn.Module, state: dict[str, torch.Tensor]
) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(state)), sorted(set(state) - expected)
