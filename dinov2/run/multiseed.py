"""One experiment over several seeds: every stage per seed, then mean ± std of each method.

    python -m dinov2.run.multiseed --experiment configs/experiments/demo.yaml --seeds 0 1 2
    [key=value ...]

Seed ``s`` runs the whole pipeline (:data:`STEPS`, as ``exps/demo.sh`` without retrieval) as the
experiment named ``<name>_seed<s>`` with ``seed=s``: the denoiser, the denoised dataset
(``<noisy root>_n2n_seed<s>``), the pretraining runs and the evaluations are per seed; the noisy
dataset (seeded by ``noise.seed``) is shared. Finished stages skip themselves, so an interrupted
reproduction resumes. Then ``<output_root>/runs/<name>_seeds/<noise spec>/`` gets ``results.md``
(mean ± std over seeds of linear and kNN top-1 on the noisy val set, with the reference rows) and
``accuracy_seeds.png`` (bars with error bars = std). Nothing is tuned: the table reports what the
experiment file says, for each seed.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from dinov2.run.experiment import EVALUATED, METHOD_LABELS, METHODS
from dinov2.run.pipeline import run_steps
from dinov2.run.report import collect_metrics
from utils.atomic import atomic_path, atomic_write_text
from utils.cli import command
from utils.config import add_experiment_args, load_experiment

log = logging.getLogger(__name__)

_EVALS = "linear,knn"
STEPS = (
    "noise",
    "n2n",
    "denoise",
    "reference",
    *[
        f"evaluate:{m}:{_EVALS}"
        for m in ("random_init", "random_init_denoised", "pixels", "pixels_denoised")
    ],
    *[f"pretrain:{m}" for m in METHODS],
    *[f"evaluate:{m}:{_EVALS}" for m in METHODS],
)
METRICS = ("linear top-1", "kNN top-1")
TABLE_NAME, BARS_NAME = "results.md", "accuracy_seeds.png"


def seed_overrides(cfg_name: str, seed: int, overrides: Sequence[str]) -> list[str]:
    """The seed's experiment: its own name (run folders) and denoised tree (its own denoiser wrote
    it)."""
    return [
        *overrides,
        f"seed={seed}",
        f"name={cfg_name}_seed{seed}",
        f"data.denoised_root=${{data.noisy_root}}_n2n_seed{seed}",
    ]


def seed_rows(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """``{method: metrics}`` of one seed's evaluation folders (methods without results are left
    out)."""
    eval_root = Path(cfg.run_dir) / "eval"
    rows = {m: collect_metrics(eval_root / m) for m in EVALUATED if (eval_root / m).is_dir()}
    return {m: r for m, r in rows.items() if r}


def aggregate(
    per_seed: dict[int, dict[str, dict[str, float]]],
) -> dict[str, dict[str, tuple[float, float, int]]]:
    """``{method: {metric: (mean, std, n_seeds)}}``; std is the sample standard deviation (0 for one
    seed)."""
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for method in EVALUATED:
        for metric in METRICS:
            values = [
                rows[method][metric] for rows in per_seed.values() if metric in rows.get(method, {})
            ]
            if values:
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                out.setdefault(method, {})[metric] = (statistics.fmean(values), std, len(values))
    return out


def markdown(
    summary: dict[str, dict[str, tuple[float, float, int]]], seeds: Sequence[int], caption: str
) -> str:
    lines = [
        caption,
        "",
        f"mean ± std over seeds {', '.join(map(str, seeds))}:",
        "",
        "| method | " + " | ".join(METRICS) + " |",
        "| --- |" + " ---: |" * len(METRICS),
    ]
    for method, metrics in summary.items():
        cells = [f"{m[0]:.2f} ± {m[1]:.2f}" if (m := metrics.get(k)) else "–" for k in METRICS]
        lines.append(f"| {METHOD_LABELS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def error_bars(summary: dict[str, dict[str, tuple[float, float, int]]], path: Path) -> None:
    # matplotlib only when a figure is drawn: it is slow to import and Agg must be chosen first
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(summary)
    fig, ax = plt.subplots(figsize=(1.5 + 1.3 * len(methods), 3.5))
    x, width = np.arange(len(methods)), 0.38
    for i, metric in enumerate(METRICS):
        means = [summary[m].get(metric, (np.nan, 0, 0))[0] for m in methods]
        stds = [summary[m].get(metric, (0, 0, 0))[1] for m in methods]
        ax.bar(x + (i - 0.5) * width, means, width, yerr=stds, capsize=3, label=metric)
    ax.set_xticks(x, [METHOD_LABELS[m] for m in methods], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("accuracy on the noisy val set (%)")
    ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def run_multiseed(
    experiment: str, seeds: Sequence[int], overrides: Sequence[str] = (), train: bool = True
) -> str:
    """Run (unless ``train`` is False) and aggregate; returns the Markdown written to
    ``results.md``."""
    base = load_experiment(experiment, overrides)
    per_seed = {}
    for seed in seeds:
        seed_args = seed_overrides(base.name, seed, overrides)
        if train and run_steps(experiment, STEPS, seed_args, log=lambda m: print(m, flush=True)):
            raise RuntimeError(
                f"seed {seed} failed (message above); re-run the same command to resume"
            )
        per_seed[seed] = seed_rows(load_experiment(experiment, seed_args))
    summary = aggregate(per_seed)
    out = Path(base.output_root) / "runs" / f"{base.name}_seeds" / str(base.noise.spec)
    caption = (
        f"Noise `{base.noise.spec}` on `{base.data.name}`, experiment `{base.name}`: linear probe "
        "and kNN top-1 on the noisy val set (N2N + DINOv2 and its references: on the denoised val "
        "set)."
    )
    text = markdown(summary, seeds, caption)
    atomic_write_text(out / TABLE_NAME, text)
    error_bars(summary, out / BARS_NAME)
    return text


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run an experiment over several seeds and report mean ± std"
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default 0 1 2)"
    )
    parser.add_argument(
        "--no-train", action="store_true", help="only aggregate the seeds' finished evaluations"
    )
    add_experiment_args(parser, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(
        run_multiseed(args.experiment, args.seeds, args.overrides, train=not args.no_train),
        end="",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
