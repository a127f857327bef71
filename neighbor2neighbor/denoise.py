"""Stage 3: denoise whole image trees with a trained Neighbor2Neighbor UNet.

The tree logic lives in :mod:`neighbor2neighbor.denoise_tree`, the tensor and image API
(:class:`~neighbor2neighbor.denoiser.Denoiser`) in :mod:`neighbor2neighbor.denoiser`. Command::

    python -m neighbor2neighbor.denoise --experiment configs/experiments/demo.yaml
    python -m neighbor2neighbor.denoise --src noisy/ --dst denoised/ --checkpoint model_best.pth
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

from neighbor2neighbor.denoise_tree import denoise_tree
from neighbor2neighbor.denoiser import Denoiser
from utils.cli import command
from utils.config import DEMO_EXPERIMENT, add_experiment_args, load_experiment, save_resolved
from utils.load_noise import noisy_tree_source
from utils.settings_record import check_settings, recorded_digest, save_settings, select_settings

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m neighbor2neighbor.denoise",
        description="Denoise every image of a tree with a Neighbor2Neighbor UNet "
        "(8-bit PNG, same relative paths).",
    )
    add_experiment_args(parser)
    parser.add_argument(
        "--src", help="tree of noisy images (whole tree; default: denoise.src / denoise.splits)"
    )
    parser.add_argument("--dst", help="output tree (default: denoise.dst)")
    parser.add_argument(
        "--checkpoint", help="model file or published weights (default: denoise.checkpoint)"
    )
    parser.add_argument(
        "--batch-size", type=int, help="images per forward pass (default: denoise.batch_size)"
    )
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: denoise.device)")
    parser.add_argument(
        "--overwrite", action="store_true", help="re-denoise and replace existing outputs"
    )
    return parser


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """Explicit flags as config overrides (applied after the positional ones, so they win)."""
    flags = {
        "src": "denoise.src",
        "dst": "denoise.dst",
        "checkpoint": "denoise.checkpoint",
        "batch_size": "denoise.batch_size",
        "device": "denoise.device",
    }
    return [
        f"{key}={getattr(args, name)}"
        for name, key in flags.items()
        if getattr(args, name) is not None
    ]


def denoise_settings(cfg) -> dict:
    """What the denoised tree depends on: the noisy source (the same with ``noise.at_load``), the
    model (and the settings it was trained with)."""
    d = cfg.denoise
    settings = select_settings(
        cfg,
        (
            "noise.spec",
            "data.name",
            "denoise.src",
            "denoise.splits",
            "denoise.checkpoint",
            "denoise.amp",
        ),
    )
    settings["checkpoint settings"] = recorded_digest(Path(d.checkpoint).parent, "n2n")
    return settings


@command
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    cfg = load_experiment(
        args.experiment or DEMO_EXPERIMENT, [*args.overrides, *flag_overrides(args)]
    )
    if args.src is not None:
        # An explicit --src means its whole tree (set after loading: the strict checker types
        # ${data.splits} as a string).
        cfg = OmegaConf.create(OmegaConf.to_container(cfg))
        cfg.denoise.splits = []
    d = cfg.denoise
    settings = denoise_settings(cfg)
    new_place = "--dst" if args.dst is not None else "data.denoised_root"
    has_outputs = os.path.isdir(d.dst) and any(
        not n.startswith(".settings.") for n in os.listdir(d.dst)
    )
    check_settings(
        d.dst,
        "denoise",
        settings,
        args.overwrite,
        new_place=new_place,
        what="the denoised tree",
        has_outputs=has_outputs,
    )
    denoiser = Denoiser.from_checkpoint(d.checkpoint, device=d.device, amp=d.amp)
    src, load_noise = noisy_tree_source(cfg, d.src)  # noise.at_load: clean + noise
    summary = denoise_tree(
        denoiser,
        src,
        d.dst,
        splits=list(d.splits),
        batch_size=d.batch_size,
        overwrite=args.overwrite,
        before_writing=lambda: save_settings(d.dst, "denoise", settings),
        noise=load_noise,
    )
    save_resolved(cfg, d.dst, name="denoise_config.yaml")
    print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
