"""Linear-probe any saved toy encoder: ``python -m toy_mnist.probe --weights FILE [--clean]``.

``FILE`` is a ``state_dict`` of the 784 → 128 → 32 MLP with the authors' keys (``net.0.weight``
``[128, 784]``, ``net.2.weight`` ``[32, 128]``): their published ``clean_mlp_final.pth``,
``noisy_mlp_final.pth``, ``clean2noisy_mlp_final.pth``, or our ``seed_<s>/<setting>_final.pt``. The
protocol is the table's (``toy_mnist.mlp_exp``): noisy train digits with fresh noise every epoch and
noisy test digits (``--clean``: clean both), the same step-matched epochs, batch, learning rate and,
for ``--seed S``, the same random draws as seed ``S`` of the table. Prints the accuracy;
``--json FILE`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import torch
from omegaconf import DictConfig

from toy_mnist.config import (
    add_config_args,
    epoch_scale_of,
    load_config,
    parse_args,
    protocol,
    run_digits,
)
from toy_mnist.objective import Encoder
from toy_mnist.train import config_dict, generator, linear_probe, step_matched
from utils.atomic import atomic_write_text
from utils.cli import command
from utils.runtime import resolve_device

log = logging.getLogger("toy_mnist.probe")


class WeightsError(ValueError):
    """A weights file that is not a toy encoder ``state_dict``; the message is one line."""


def load_encoder(path: str | os.PathLike) -> Encoder:
    """The encoder in ``path`` (a ``state_dict``, loaded with ``weights_only=True`` and
    strictly)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"--weights {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a text file, a truncated file, a pickle of other objects
        raise WeightsError(
            f"--weights {path}: not a PyTorch state_dict ({type(e).__name__})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(
            f"--weights {path}: expected a state_dict of tensors, got {type(state).__name__}"
        )
    encoder = Encoder()
    expected = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        raise WeightsError(
            f"--weights {path}: keys/shapes {found} are not the toy MLP's {expected} "
            "(784 → 128 → 32, no biases)"
        )
    encoder.load_state_dict(state, strict=True)
    if not all(torch.isfinite(v).all() for v in state.values()):
        raise WeightsError(f"--weights {path}: the weights hold NaN or inf values")
    return encoder


def probe(
    cfg: DictConfig, weights: str | os.PathLike, *, seed: int = 0, clean: bool = False
) -> dict:
    """Probe the encoder in ``weights`` with the protocol of ``cfg`` (the table's, on its digits,
    device and step-matched epochs) and the random draws of the table's ``seed``; returns the
    accuracy and the protocol."""
    encoder = load_encoder(weights)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device, "device")
    digits = run_digits(cfg).to(device)
    scale = epoch_scale_of(cfg, len(digits.train_x))
    proto = step_matched(protocol(cfg), scale)
    noise_std = 0.0 if clean else proto.noise_std
    stream = "probe_clean" if clean else "probe_noisy"
    accuracy = linear_probe(
        encoder.to(device), digits, proto, generator(seed, stream), noise_std=noise_std
    )
    probe_data = "clean" if clean else f"noisy (std {proto.noise_std:g})"
    print(
        f"{weights}: {probe_data} probe accuracy {100 * accuracy:.2f} % "
        f"({digits.source}, seed {seed})"
    )
    return {
        "weights": str(weights),
        "probe_data": probe_data,
        "accuracy": accuracy,
        "seed": seed,
        "data": digits.source,
        "epoch_scale": scale,
        "config": {
            k: v
            for k, v in config_dict(proto).items()
            if k in ("probe_epochs", "batch_size", "probe_lr")
        },
    }


@command
def main(argv: list[str] | None = None) -> int:
    """``python -m toy_mnist.probe --weights FILE [--clean] [--seed S] [--json FILE] [key=value]``;
    prints the accuracy and with ``--json`` writes it with the protocol."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--weights", required=True, help="state_dict of the toy MLP (net.0.weight, net.2.weight)"
    )
    parser.add_argument(
        "--clean", action="store_true", help="train and test the probe on clean digits"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the table's seed whose probe draws to use"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the result to this JSON file"
    )
    add_config_args(parser)
    args = parse_args(parser, argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = load_config(args.config, args.overrides)
    result = probe(cfg, args.weights, seed=args.seed, clean=args.clean)
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
