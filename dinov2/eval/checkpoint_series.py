"""Results over a run's exported checkpoints: the final and the best value, and accuracy vs epoch.

With ``eval.checkpoints: all`` (the paper's ImageNet-100 protocol: every 5-epoch teacher export is
linear-probed) a method's evaluation folder holds one sub-folder per export,
``training_<iteration>/``, each with its ``results_eval_*.json``. The report then shows the *final*
value (the last export) in the main table, and next to it a table of final and *best over
checkpoints*, each labelled with its checkpoint name, and a plot of accuracy vs epoch per method
(``accuracy_vs_epoch.png``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from utils.atomic import atomic_path

log = logging.getLogger(__name__)

_TRAINING_DIR = re.compile(r"^training_(\d+)$")
SERIES_METRIC = "linear top-1"
PLOT_NAME = "accuracy_vs_epoch.png"


@dataclass(frozen=True)
class CheckpointResult:
    """The metrics of one export: ``name`` ``training_<iteration>``, ``epoch`` (None when
    unknown)."""

    name: str
    iteration: int
    epoch: float | None
    metrics: dict[str, float]


def _epoch_length(checkpoint_dir: Path) -> int | None:
    """``train.OFFICIAL_EPOCH_LENGTH`` of the run whose export was evaluated in ``checkpoint_dir``
    (from the ``config_file`` its settings record names), or None."""
    for record in sorted(checkpoint_dir.glob(".settings.*.json")):
        try:
            config_file = json.loads(record.read_text())["settings"].get("config_file")
            if config_file and Path(config_file).is_file():
                return int(OmegaConf.load(config_file).train.OFFICIAL_EPOCH_LENGTH)
        except (ValueError, KeyError, TypeError, AttributeError, OSError):
            continue
    return None


def checkpoint_series(
    eval_dir: str | Path, collect: Callable[[Path], dict[str, float]]
) -> list[CheckpointResult]:
    """Every ``eval_dir/training_<iteration>/`` with results, oldest first; ``collect`` reads one
    folder's metrics.

    The epoch of an export is ``(iteration + 1) / OFFICIAL_EPOCH_LENGTH`` (official exports are
    named after the index of their last iteration, e.g. ``training_6249`` after 5 epochs of 1250
    iterations).
    """
    found = []
    for d in Path(eval_dir).glob("training_*"):
        m = _TRAINING_DIR.match(d.name)
        if not (m and d.is_dir()):
            continue
        metrics = collect(d)
        if metrics:
            iteration = int(m[1])
            length = _epoch_length(d)
            epoch = (iteration + 1) / length if length else None
            found.append(CheckpointResult(d.name, iteration, epoch, metrics))
    return sorted(found, key=lambda r: r.iteration)


def final_and_best(series: list[CheckpointResult], metric: str = SERIES_METRIC) -> dict | None:
    """``{"final": (name, value), "best": (name, value), "n": count}`` of ``metric``; None without
    values.

    Final is the last export; best the highest value (the earliest export on a tie).
    """
    with_metric = [r for r in series if metric in r.metrics]
    if not with_metric:
        return None
    final = with_metric[-1]
    best = max(with_metric, key=lambda r: (r.metrics[metric], -r.iteration))
    return {
        "final": (final.name, final.metrics[metric]),
        "best": (best.name, best.metrics[metric]),
        "n": len(with_metric),
    }


def final_best_table(
    series_by_method: Mapping[str, list[CheckpointResult]], metric: str = SERIES_METRIC
) -> str:
    """Markdown: per method, the final and the best ``metric`` over its checkpoints, with their
    names."""
    lines = [
        f"{metric} over the exported checkpoints (final = the last export; best = the highest "
        "over all exports):",
        "",
        "| method | final | final checkpoint | best | best checkpoint | checkpoints |",
        "| --- | ---: | --- | ---: | --- | ---: |",
    ]
    for method, series in series_by_method.items():
        fb = final_and_best(series, metric)
        if fb is not None:
            (final_name, final), (best_name, best) = fb["final"], fb["best"]
            lines.append(
                f"| {method} | {final:.2f} | {final_name} | {best:.2f} | {best_name} | {fb['n']} |"
            )
    return "\n".join(lines) + "\n"


def accuracy_vs_epoch(
    series_by_method: Mapping[str, list[CheckpointResult]], path: Path, metric: str = SERIES_METRIC
) -> None:
    """One line per method: ``metric`` of each export against its epoch (its iteration when no epoch
    is known)."""
    # matplotlib only when a figure is drawn: it is slow to import and Agg must be chosen first
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    by_epoch = all(r.epoch is not None for s in series_by_method.values() for r in s)
    for method, series in series_by_method.items():
        points = [
            (r.epoch if by_epoch else r.iteration + 1, r.metrics[metric])
            for r in series
            if metric in r.metrics
        ]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3, label=method)
    ax.set_xlabel("epoch" if by_epoch else "training iteration")
    ax.set_ylabel(f"{metric} (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def add_checkpoint_results(
    rows: dict[str, dict[str, float]],
    run_dirs: Mapping[str, Path],
    out: Path,
    collect: Callable[[Path], dict[str, float]],
) -> str:
    """For methods evaluated on several exports: fill their row with the final export's metrics
    (when the folder has no top-level results), write :data:`PLOT_NAME`, and return the final/best
    table ('' if none)."""
    series_by_method = {}
    for method, run_dir in run_dirs.items():
        series = checkpoint_series(run_dir, collect)
        if series:
            series_by_method[method] = series
            if not rows.get(method):
                rows[method] = dict(series[-1].metrics)
    if not series_by_method:
        return ""
    accuracy_vs_epoch(series_by_method, out / PLOT_NAME)
    return "\n" + final_best_table(series_by_method)
