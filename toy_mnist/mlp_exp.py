"""CLI of the toy experiment: ``python -m toy_mnist.mlp_exp --seeds N --out DIR``.

Runs the three pretraining settings and their probes for seeds ``0 .. N-1`` and writes, in ``DIR``:
``seed_<s>/result.json`` (written last: a finished seed is skipped on a rerun), ``seed_<s>/metrics.jsonl``
(loss per epoch), ``seed_<s>/clean_epoch<switch>.pt``, then ``results.json`` (every accuracy, mean and std),
``results.md`` (the table) and ``accuracy.png`` (bar plot). Prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from toy_mnist.data import Digits, load_digits
from toy_mnist.train import (
    ToyConfig,
    config_dict,
    epoch_scale,
    epoch_scale_arg,
    run_seed,
    step_matched,
)
from utils.atomic import atomic_write_text

log = logging.getLogger("toy_mnist.mlp_exp")

RESULT_KEYS = ("clean/clean", "clean/noisy", "noisy/noisy", "clean_noisy/noisy")  # the paper's bars


def rows(cfg: ToyConfig) -> list[tuple[str, str, str]]:
    """``(result key, pretraining, probe data)`` of each bar, labelled with the epochs and noise ``cfg`` ran."""
    noisy = f"noisy (std {cfg.noise_std:g})"
    curriculum = f"clean {cfg.switch_epoch} → noisy {cfg.curriculum_epochs} epochs"
    labels = (("clean", "clean"), ("clean", noisy), ("noisy", noisy), (curriculum, noisy))
    return [(key, pre, probe) for key, (pre, probe) in zip(RESULT_KEYS, labels)]


def summarize(per_seed: dict[int, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and std (ddof=1 over seeds; 0 for one seed) of every accuracy key."""
    out = {}
    for key in RESULT_KEYS:
        values = np.array([acc[key] for acc in per_seed.values()])
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[key] = {"mean": float(values.mean()), "std": std, "n": len(values)}
    return out


def table(summary: dict[str, dict[str, float]], cfg: ToyConfig) -> str:
    """Markdown table of accuracies in percent: ``mean ± std``."""
    lines = ["| pretraining | probe data | accuracy (%) |", "| --- | --- | --- |"]
    for key, pretraining, probe in rows(cfg):
        s = summary[key]
        lines.append(f"| {pretraining} | {probe} | {100 * s['mean']:.2f} ± {100 * s['std']:.2f} |")
    return "\n".join(lines) + "\n"


def bar_plot(summary: dict[str, dict[str, float]], cfg: ToyConfig, path: Path, title: str) -> None:
    """Bars of mean accuracy with std error bars, written atomically to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    labels = [
        f"{pre.replace(' epochs', '')}\n({probe.split()[0]} probe)" for _, pre, probe in rows(cfg)
    ]
    means = [100 * summary[k]["mean"] for k in RESULT_KEYS]
    stds = [100 * summary[k]["std"] for k in RESULT_KEYS]
    ax.bar(labels, means, yerr=stds, capsize=4, color=["#9ecae1", "#3182bd", "#e6550d", "#31a354"])
    ax.set_xlabel("pretraining (probe data)")
    ax.set_ylabel("linear probe accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def run_seeds(
    digits: Digits, seeds: list[int], cfg: ToyConfig, out: Path, overwrite: bool
) -> dict[int, dict]:
    """Accuracies of every seed, read from ``seed_<s>/result.json`` when done before (unless ``overwrite``)."""
    per_seed = {}
    for seed in tqdm(seeds, desc="seeds", unit="seed"):
        result_file = out / f"seed_{seed}" / "result.json"
        if result_file.is_file() and not overwrite:
            done = json.loads(result_file.read_text())
            if done["config"] == config_dict(cfg) and done["data"] == digits.source:
                per_seed[seed] = done["accuracy"]
                log.info("seed %d already done, read %s", seed, result_file)
                continue
            raise FileExistsError(
                f"{result_file} was made with another config or data; pass --overwrite or another --out"
            )
        start = time.perf_counter()
        acc = run_seed(digits, seed, cfg, result_file.parent)
        record = {
            "seed": seed,
            "data": digits.source,
            "config": config_dict(cfg),
            "accuracy": acc,
            "wall_time_s": time.perf_counter() - start,
        }
        atomic_write_text(result_file, json.dumps(record, indent=1) + "\n")
        per_seed[seed] = acc
    return per_seed


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seeds", type=int, default=20, help="number of repeats, seeds 0..N-1 (paper: 20)"
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/toy_mnist"), help="output folder")
    parser.add_argument(
        "--mnist-root", default=None, help="full MNIST in torchvision layout (default: MNIST-5k)"
    )
    parser.add_argument(
        "--device", default="auto", help="auto (cuda if available) | cpu | cuda[:N]"
    )
    parser.add_argument(
        "--n-train", type=int, default=0, help="use N training digits, classes balanced (0: all)"
    )
    parser.add_argument(
        "--n-test", type=int, default=0, help="use N test digits, classes balanced (0: all)"
    )
    # one thread: the model is too small for intra-op threads to pay, and they stall on a shared CPU
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads of torch (0: torch's default)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="recompute seeds already finished in --out"
    )
    parser.add_argument(
        "--epoch-scale",
        default="auto",
        type=epoch_scale_arg,
        help="multiply every *-epochs option and --switch-epoch by this; auto: 60000 / training digits, "
        "the paper's number of Adam steps (15 on MNIST-5k, 1 on full MNIST); 1: epochs as given",
    )
    for name, value in config_dict(ToyConfig()).items():  # protocol knobs, paper values by default
        unit = " (epochs over 60k digits, see --epoch-scale)" if "epoch" in name else ""
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(value),
            default=value,
            help=f"paper: {value}{unit}",
        )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    return args


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def main(argv: list[str] | None = None) -> dict:
    """Run the experiment from command-line arguments; returns what ``results.json`` holds."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        paper_cfg = ToyConfig(**{k: getattr(args, k) for k in config_dict(ToyConfig())})
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    device = _device(args.device)
    try:
        digits = load_digits(args.mnist_root)
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}") from None
    if args.n_train or args.n_test:  # a smoke run on fewer digits
        digits = digits.subset(
            args.n_train or len(digits.train_x), args.n_test or len(digits.test_x)
        )
    digits = digits.to(device)
    scale = (
        epoch_scale(len(digits.train_x)) if args.epoch_scale == "auto" else float(args.epoch_scale)
    )
    cfg = step_matched(paper_cfg, scale)
    log.info("epoch scale %.4g: %s", scale, config_dict(cfg))
    args.out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    per_seed = run_seeds(digits, list(range(args.seeds)), cfg, args.out, args.overwrite)
    summary = summarize(per_seed)
    results = {
        "data": digits.source,
        "device": str(device),
        "config": config_dict(cfg),
        "epoch_scale": scale,
        "summary": summary,
        "per_seed": {str(s): a for s, a in per_seed.items()},
        "wall_time_s": time.perf_counter() - start,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
    }
    atomic_write_text(args.out / "results.json", json.dumps(results, indent=1) + "\n")
    md = table(summary, cfg)
    atomic_write_text(args.out / "results.md", md)
    title = f"toy MLP on {digits.source}, {args.seeds} seeds, mean ± std"
    bar_plot(summary, cfg, args.out / "accuracy.png", title)
    print(
        md + f"\n{args.seeds} seeds on {digits.source} ({device}), {results['wall_time_s']:.0f} s; "
        f"results in {args.out}/results.json, plot {args.out}/accuracy.png"
    )
    return results


if __name__ == "__main__":
    main()
