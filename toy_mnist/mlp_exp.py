"""CLI of the toy experiment: ``python -m toy_mnist.mlp_exp [--config FILE] [seeds=N out=DIR ...]``.

Runs the three pretraining settings and their probes for seeds ``0 .. N-1`` and writes, in ``DIR``:
``seed_<s>/result.json`` (written last: a finished seed is skipped on a rerun),
``seed_<s>/metrics.jsonl`` (loss per epoch), ``seed_<s>/clean_epoch<switch>.pt``, then
``results.json`` (every accuracy, mean and std), ``results.md`` (the table) and ``accuracy.png``
(bar plot). Prints the table.
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
from omegaconf import DictConfig
from tqdm import tqdm

from toy_mnist.config import (
    add_config_args,
    epoch_scale_of,
    load_config,
    parse_args,
    protocol,
    run_digits,
)
from toy_mnist.data import Digits
from toy_mnist.train import ToyConfig, config_dict, run_seed, step_matched
from utils.atomic import atomic_write_text
from utils.cli import command
from utils.runtime import resolve_device

log = logging.getLogger("toy_mnist.mlp_exp")

RESULT_KEYS = ("clean/clean", "clean/noisy", "noisy/noisy", "clean_noisy/noisy")  # the paper's bars


def rows(cfg: ToyConfig) -> list[tuple[str, str, str]]:
    """``(result key, pretraining, probe data)`` of each bar, labelled with the epochs and noise
    ``cfg`` ran."""
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
    """Accuracies of every seed, read from ``seed_<s>/result.json`` when done before (unless
    ``overwrite``)."""
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
                f"{result_file} was made with another config or data; "
                "pass --overwrite or another out=DIR"
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


def run(cfg: DictConfig, overwrite: bool = False) -> dict:
    """Run the experiment of a loaded config (:func:`toy_mnist.config.load_config`); returns what
    ``results.json`` holds. ``overwrite`` recomputes the seeds already finished in ``cfg.out``."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device, "device")
    digits = run_digits(cfg).to(device)
    scale = epoch_scale_of(cfg, len(digits.train_x))
    proto = step_matched(protocol(cfg), scale)
    log.info("epoch scale %.4g: %s", scale, config_dict(proto))
    out = Path(cfg.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    per_seed = run_seeds(digits, list(range(cfg.seeds)), proto, out, overwrite)
    summary = summarize(per_seed)
    results = {
        "data": digits.source,
        "device": str(device),
        "config": config_dict(proto),
        "epoch_scale": scale,
        "summary": summary,
        "per_seed": {str(s): a for s, a in per_seed.items()},
        "wall_time_s": time.perf_counter() - start,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    md = table(summary, proto)
    atomic_write_text(out / "results.md", md)
    title = f"toy MLP on {digits.source}, {cfg.seeds} seeds, mean ± std"
    bar_plot(summary, proto, out / "accuracy.png", title)
    print(
        md + f"\n{cfg.seeds} seeds on {digits.source} ({device}), {results['wall_time_s']:.0f} s; "
        f"results in {out}/results.json, plot {out}/accuracy.png"
    )
    return results


@command
def main(argv: list[str] | None = None) -> int:
    """``python -m toy_mnist.mlp_exp [--config FILE] [--overwrite] [key=value ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--overwrite", action="store_true", help="recompute seeds already finished in `out`"
    )
    add_config_args(parser)
    args = parse_args(parser, argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run(load_config(args.config, args.overrides), args.overwrite)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
