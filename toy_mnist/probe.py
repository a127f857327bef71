"""Linear-probe any saved toy encoder: ``python -m toy_mnist.probe --weights FILE [--clean]``.

``FILE`` is a ``state_dict`` of the 784 → 128 → 32 MLP with the authors' keys (``net.0.weight``
``[128, 784]``, ``net.2.weight`` ``[32, 128]``): their published ``clean_mlp_final.pth``,
``noisy_mlp_final.pth``, ``clean2noisy_mlp_final.pth``, or our ``seed_<s>/<setting>_final.pt``.
The protocol is the table's (``toy_mnist.mlp_exp``): noisy train digits with fresh noise every epoch and
noisy test digits (``--clean``: clean both), the same step-matched epochs, batch, learning rate and,
for ``--seed S``, the same random draws as seed ``S`` of the table. Prints the accuracy; ``--json FILE``
also writes it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import torch

from toy_mnist.data import load_digits
from toy_mnist.objective import Encoder
from toy_mnist.train import (
    ToyConfig,
    config_dict,
    epoch_scale,
    epoch_scale_arg,
    generator,
    linear_probe,
    step_matched,
)
from utils.atomic import atomic_write_text

log = logging.getLogger("toy_mnist.probe")


class WeightsError(ValueError):
    """A weights file that is not a toy encoder ``state_dict``; the message is one line."""


def load_encoder(path: str | os.PathLike) -> Encoder:
    """The encoder in ``path`` (a ``state_dict``, loaded with ``weights_only=True`` and strictly)."""
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
            f"--weights {path}: keys/shapes {found} are not the toy MLP's {expected} (784 → 128 → 32, no biases)"
        )
    encoder.load_state_dict(state, strict=True)
    if not all(torch.isfinite(v).all() for v in state.values()):
        raise WeightsError(f"--weights {path}: the weights hold NaN or inf values")
    return encoder


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
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
        "--mnist-root", default=None, help="full MNIST in torchvision layout (default: MNIST-5k)"
    )
    parser.add_argument(
        "--epoch-scale",
        default="auto",
        type=epoch_scale_arg,
        help="as toy_mnist.mlp_exp (auto: 60000 / training digits)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the result to this JSON file"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads of torch (0: torch's default)"
    )
    defaults = ToyConfig()
    parser.add_argument(
        "--probe-epochs", type=int, default=defaults.probe_epochs, help="paper: 50 (over 60k)"
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--probe-lr", type=float, default=defaults.probe_lr)
    parser.add_argument("--noise-std", type=float, default=defaults.noise_std)
    args = parser.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> dict:
    """Probe the encoder in ``--weights``; returns (and with ``--json`` writes) the accuracy and protocol."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        encoder = load_encoder(args.weights)
        cfg = ToyConfig(
            probe_epochs=args.probe_epochs,
            batch_size=args.batch_size,
            probe_lr=args.probe_lr,
            noise_std=args.noise_std,
        )
        digits = load_digits(args.mnist_root)
    except (WeightsError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    scale = (
        epoch_scale(len(digits.train_x)) if args.epoch_scale == "auto" else float(args.epoch_scale)
    )
    cfg = step_matched(cfg, scale)
    noise_std = 0.0 if args.clean else cfg.noise_std
    stream = "probe_clean" if args.clean else "probe_noisy"
    accuracy = linear_probe(encoder, digits, cfg, generator(args.seed, stream), noise_std=noise_std)
    probe_data = "clean" if args.clean else f"noisy (std {cfg.noise_std:g})"
    result = {
        "weights": str(args.weights),
        "probe_data": probe_data,
        "accuracy": accuracy,
        "seed": args.seed,
        "data": digits.source,
        "epoch_scale": scale,
        "config": {
            k: v
            for k, v in config_dict(cfg).items()
            if k in ("probe_epochs", "batch_size", "probe_lr")
        },
    }
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    print(
        f"{args.weights}: {probe_data} probe accuracy {100 * accuracy:.2f} % ({digits.source}, seed {args.seed})"
    )
    return result


if __name__ == "__main__":
    main()
