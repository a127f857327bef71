"""Frozen backbones for evaluation: a training config + a ``teacher_checkpoint.pth`` (ours or
official).

The official arguments (``--config-file``, ``--pretrained-weights``, ``--output-dir``, ``--opts``)
and names (:func:`build_model_for_eval`, :func:`setup_and_build_model`, :func:`get_autocast_dtype`).
Weights load strictly; an architecture mismatch, or weights that are not all finite (a diverged
run), is a one-line error naming the checkpoint, the config and the fix, instead of a silent
partial load or a chance-level result.

Every evaluation records the settings of its results (:func:`prepare_output`), so a re-run with
another checkpoint or other settings is refused instead of skipped as "finished".
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from dinov2.eval.pixels import PIXELS_ARCH, PixelBackbone
from dinov2.train.model_builder import build_model_from_cfg
from dinov2.utils.config import load_training_config
from dinov2.utils.utils import CheckpointMismatchError as LoadError
from dinov2.utils.utils import load_pretrained_weights
from utils.settings_record import check_settings, normalise, recorded_digest, save_settings

log = logging.getLogger(__name__)


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the architecture of the config (one-line message with the
    fix)."""


def get_args_parser(
    description: str | None = None, add_help: bool = True
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, add_help=add_help)
    parser.add_argument(
        "--config-file", type=str, help="training config of the checkpoint (architecture)"
    )
    parser.add_argument(
        "--pretrained-weights", type=str, help="teacher_checkpoint.pth or official weights"
    )
    parser.add_argument("--output-dir", default="", type=str, help="where results are written")
    parser.add_argument("--opts", default=[], nargs="+", help="config overrides key=value")
    return parser


def load_model_config(
    config_file: str | os.PathLike | None, opts: Sequence[str] = ()
) -> DictConfig:
    """``ssl_default_config.yaml`` ← ``config_file`` ← ``opts``, strict
    (``dinov2.utils.config``)."""
    if config_file is not None and not Path(config_file).is_file():
        raise FileNotFoundError(
            f"--config-file {config_file} not found; pass the training config of the run"
        )
    return load_training_config(config_file, opts)


def build_backbone(config: DictConfig) -> torch.nn.Module:
    """The teacher backbone of ``config`` with random weights (``build_model_from_cfg``,
    only_teacher); ``student.arch: pixels`` gives the raw-pixel reference
    (:class:`dinov2.eval.pixels.PixelBackbone`)."""
    if config.student.arch == PIXELS_ARCH:
        return PixelBackbone(config.crops.global_crops_size)
    model, _ = build_model_from_cfg(config, only_teacher=True)
    return model


def load_backbone_weights(
    model: torch.nn.Module,
    path: str | os.PathLike,
    checkpoint_key: str | None = "teacher",
    config: str = "the config",
) -> None:
    """Strict load through ``dinov2.utils.utils.load_pretrained_weights``; a mismatch becomes one
    line."""
    try:
        load_pretrained_weights(model, path, checkpoint_key, strict=True)
    except LoadError as e:
        problems = str(e).splitlines()[1:]
        raise CheckpointMismatchError(
            f"{path} does not match the architecture of {config} ({len(problems)} problems, first: "
            f"{problems[0] if problems else '?'}); pass the --config-file the checkpoint was "
            "trained with"
        ) from e
    except RuntimeError as e:  # an unreadable file
        # torch's message may advise weights_only=False, which would run code from the file: say
        # what it is not.
        cause = type(e.__cause__).__name__ if e.__cause__ is not None else type(e).__name__
        raise CheckpointMismatchError(
            f"cannot read checkpoint {path}: truncated, corrupt or not a PyTorch checkpoint "
            f"({cause}); "
            "pass a teacher_checkpoint.pth or official weights"
        ) from None


def check_finite_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Refuse weights with NaN/inf: evaluating them would report chance accuracy as a result."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointMismatchError(
                f"{path} has non-finite weights (first: {name}): the run that wrote it diverged; "
                "evaluate an earlier checkpoint or retrain with a lower optim.base_lr"
            )


def check_finite_features(features: torch.Tensor, what: str) -> None:
    """Refuse non-finite features (a backbone that overflows on these images)."""
    if not torch.isfinite(features).all():
        raise ValueError(
            f"the backbone produced non-finite features on {what}; check the checkpoint and the "
            "images"
        )


def build_model_for_eval(
    config: DictConfig,
    pretrained_weights: str | os.PathLike | None,
    device: str | torch.device = "cpu",
    config_name: str = "the config",
) -> torch.nn.Module:
    """Frozen teacher backbone in eval mode on ``device`` (random weights when
    ``pretrained_weights`` is None)."""
    model = build_backbone(config)
    if pretrained_weights is not None:
        load_backbone_weights(model, pretrained_weights, "teacher", config_name)
        check_finite_weights(model, pretrained_weights)
    model.requires_grad_(False)
    return model.eval().to(device)


def get_autocast_dtype(config: DictConfig) -> torch.dtype:
    """The teacher's mixed-precision dtype of the config (fp32 where the config has none)."""
    dtype = OmegaConf.select(
        config, "compute_precision.teacher.backbone.mixed_precision.param_dtype"
    )
    return {"fp16": torch.half, "bf16": torch.bfloat16}.get(dtype, torch.float)


def setup_and_build_model(
    args: argparse.Namespace, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, torch.dtype]:
    """Official entry point: config from ``args.config_file``/``args.opts``, weights from
    ``args.pretrained_weights``."""
    config = load_model_config(args.config_file, args.opts)
    model = build_model_for_eval(config, args.pretrained_weights, device, str(args.config_file))
    return model, get_autocast_dtype(config)


def eval_settings(args: argparse.Namespace, keys: Sequence[str]) -> dict:
    """``{--flag: value}`` of the arguments that determine an evaluation's results, plus the
    recorded settings of the pretraining run whose checkpoint is evaluated
    (``RUN/eval/training_N/…``)."""
    settings = normalise({f"--{k.replace('_', '-')}": getattr(args, k, None) for k in keys})
    weights = getattr(args, "pretrained_weights", None)
    if weights and len(Path(weights).parents) > 2:
        settings["checkpoint settings"] = recorded_digest(Path(weights).parents[2], "pretrain")
    return settings


def skip_finished(output_dir: str | Path | None, results_name: str, overwrite: bool) -> bool:
    """True when ``output_dir/results_name`` exists and ``overwrite`` is off (a finished evaluation
    is kept)."""
    if output_dir and (Path(output_dir) / results_name).is_file() and not overwrite:
        log.info("%s exists; skipped (pass --overwrite to redo)", Path(output_dir) / results_name)
        return True
    return False


def prepare_output(
    args: argparse.Namespace, stage: str, results_name: str, keys: Sequence[str], overwrite: bool
) -> bool:
    """True when the evaluation is finished with the same settings (skip it); refuses other settings
    (:class:`utils.settings_record.StaleOutputsError`); otherwise records the settings and returns
    False."""
    out = getattr(args, "output_dir", None)
    if not out:
        return False
    settings = eval_settings(args, keys)
    has_outputs = (Path(out) / results_name).is_file()
    check_settings(
        out, stage, settings, overwrite, what=f"the {stage} evaluation", has_outputs=has_outputs
    )
    if skip_finished(out, results_name, overwrite):
        return True
    save_settings(out, stage, settings)
    return False
