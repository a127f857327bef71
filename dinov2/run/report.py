"""Results table and figures from evaluation folders.

    python -m dinov2.run.report RUN_DIR [RUN_DIR ...] --out DIR [--labels A B ...] \\
        [--grid CLEAN_DIR NOISY_DIR [DENOISED_DIR]]
    python -m dinov2.run.report --experiment configs/experiments/demo.yaml [key=value ...]

Each RUN_DIR holds any of ``results_eval_linear.json``, ``results_eval_knn.json`` and
``results_eval_retrieval.json``. Written to ``--out`` (atomically): ``results.md`` (Markdown table,
one row per method, one column per metric, also printed), ``accuracy.png`` (bars per method) and,
with ``--grid``, ``noise_grid.png`` (one row per folder: the same images clean / noisy / denoised).
A RUN_DIR evaluated on several exports (``training_<iteration>/`` sub-folders,
``eval.checkpoints: all``) gives its final export's row, a table of final and best over checkpoints
and ``accuracy_vs_epoch.png`` (:mod:`dinov2.eval.checkpoint_series`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import center_crop, pil_to_tensor, resize
from torchvision.utils import make_grid, save_image

from dinov2.eval.checkpoint_series import add_checkpoint_results
from dinov2.eval.pixels import MAX_PIXEL_SIDE
from dinov2.eval.sweep import SWEEP_NAME
from dinov2.run.experiment import EVALUATED, METHOD_LABELS, RANDOM_INIT_OF
from utils.atomic import atomic_path, atomic_write_text
from utils.cli import command
from utils.config import add_experiment_args, load_experiment
from utils.image_io import is_image_file
from utils.load_noise import LoadTimeNoise, noisy_tree_source
from utils.settings_record import check_settings, save_settings, select_settings

# A noise-grid row: an image folder, or (folder of clean images, the noise added as they are read).
GridFolder = str | os.PathLike | tuple[Path, LoadTimeNoise]

log = logging.getLogger(__name__)

RESULT_FILES = {
    "linear": "results_eval_linear.json",
    "knn": "results_eval_knn.json",
    "retrieval": "results_eval_retrieval.json",
}
TABLE_NAME, BARS_NAME, GRID_NAME = "results.md", "accuracy.png", "noise_grid.png"
SWEEP_PLOT_NAME = "noise_sweep.png"
GAIN_PREFIX = "gain "
GAIN_METRICS = ("kNN top-1", "linear top-1")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def add_gains(rows: dict[str, dict], reference_of: dict[str, str]) -> None:
    """Add ``gain <metric>`` = row − its reference row (e.g. the same backbone untrained) for each
    top-1 metric.

    ``reference_of`` maps a row name to its reference row's name; rows without one (or whose
    reference lacks the metric) get no gain cell.
    """
    for name, ref_name in reference_of.items():
        row, ref = rows.get(name), rows.get(ref_name)
        if row is None or ref is None:
            continue
        for metric in GAIN_METRICS:
            if _number(row.get(metric)) and _number(ref.get(metric)):
                row[f"{GAIN_PREFIX}{metric}"] = row[metric] - ref[metric]


def collect_metrics(run_dir: str | os.PathLike) -> dict[str, float]:
    """Flat ``{column: value}`` of one evaluation folder (missing files contribute nothing)."""
    run_dir = Path(run_dir)
    row: dict[str, float] = {}
    loaded = {}
    for kind, name in RESULT_FILES.items():
        path = run_dir / name
        if path.is_file():
            try:
                loaded[kind] = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{path} is not valid JSON ({e.msg}); re-run its evaluation"
                ) from e
    if "linear" in loaded:
        row["linear top-1"] = loaded["linear"]["top1"]
        row["linear top-5"] = loaded["linear"]["top5"]
    if "knn" in loaded:
        best = loaded["knn"].get("best") or max(
            (v for v in loaded["knn"].values()), key=lambda v: v["top1"]
        )
        row["kNN top-1"] = best["top1"]
    for dataset, r in loaded.get("retrieval", {}).items():
        if dataset != "settings":
            for setting, short in (("medium", "M"), ("hard", "H")):
                row[f"{dataset} mAP {short}"] = r[f"mAP_{setting}"]
    return row


def _cell(column: str, value: float | str) -> str:
    if not _number(value):
        return str(value)
    return f"{value:+.2f}" if column.startswith(GAIN_PREFIX) else f"{value:.2f}"


def markdown_table(rows: dict[str, dict[str, float | str]]) -> str:
    """Method × metric table; a metric a method lacks is shown as ``–``, a text value (``n/a``) as
    is."""
    columns: list[str] = []
    for row in rows.values():
        columns += [c for c in row if c not in columns]
    lines = ["| method | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for method, row in rows.items():
        cells = [_cell(c, row[c]) if c in row else "–" for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def accuracy_bars(rows: dict[str, dict[str, float]], path: Path) -> None:
    """Grouped bars: one group per method, one bar per accuracy metric (top-1 columns)."""
    # matplotlib only when a figure is drawn: it is slow to import and Agg must be chosen first
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [c for c in ("linear top-1", "kNN top-1") if any(c in r for r in rows.values())]
    fig, ax = plt.subplots(figsize=(1.5 + 1.4 * len(rows), 3.5))
    width = 0.8 / max(1, len(metrics))
    x = np.arange(len(rows))
    for i, metric in enumerate(metrics):
        values = [r[metric] if _number(r.get(metric)) else np.nan for r in rows.values()]
        bars = ax.bar(x + i * width - 0.4 + width / 2, values, width, label=metric)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, list(rows), rotation=15)
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=8)
    _save_figure(fig, path)
    plt.close(fig)


def sweep_section(run_dirs: dict[str, Path], out: Path) -> str:
    """Tables (kNN and linear top-1 per noise level) and ``noise_sweep.png`` from the folders'
    ``sweep.json``.

    Returns the Markdown section ('' when no folder has a sweep); levels are columns in sweep order.
    """
    sweeps = {}
    for name, d in run_dirs.items():
        path = Path(d) / SWEEP_NAME
        if path.is_file():
            try:
                sweeps[name] = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{path} is not valid JSON ({e.msg}); re-run: python -m dinov2.run.sweep"
                ) from e
    if not sweeps:
        return ""
    levels: list[str] = []
    for result in sweeps.values():
        levels += [lv for lv in result if lv not in levels]
    section = (
        "\n**Noise-level sweep** (clean val/train data noised on the fly; "
        "no denoiser for any row):\n"
    )
    metrics = [
        m
        for m in ("knn_top1", "linear_top1")
        if any(m in r for s in sweeps.values() for r in s.values())
    ]
    for metric in metrics:
        table = {
            name: {lv: s[lv][metric] for lv in levels if metric in s.get(lv, {})}
            for name, s in sweeps.items()
        }
        section += (
            f"\n{'kNN' if metric == 'knn_top1' else 'linear'} top-1 by noise level:\n\n"
            + markdown_table(table)
        )
    _sweep_plot(sweeps, levels, metrics, out / SWEEP_PLOT_NAME)
    return section


def _sweep_plot(sweeps: dict[str, dict], levels: list[str], metrics: list[str], path: Path) -> None:
    # matplotlib only when a figure is drawn: it is slow to import and Agg must be chosen first
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, result in sweeps.items():
            xs = [i for i, lv in enumerate(levels) if metric in result.get(lv, {})]
            ax.plot(xs, [result[levels[i]][metric] for i in xs], marker="o", label=name)
        ax.set_xticks(range(len(levels)), levels)
        ax.set_xlabel("noise level (val and kNN/probe training data)")
        ax.set_ylabel(f"{'kNN' if metric == 'knn_top1' else 'linear'} top-1 (%)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    _save_figure(fig, path)
    plt.close(fig)


def _spread_over_folders(paths: Sequence[Path], n: int) -> list[Path]:
    """Up to ``n`` paths, taken round-robin over their parent folders (one image per class
    first)."""
    by_folder: dict[Path, list[Path]] = {}
    for p in paths:
        by_folder.setdefault(p.parent, []).append(p)
    chosen: list[Path] = []
    for rank in range(max(len(v) for v in by_folder.values())):
        for folder in sorted(by_folder):
            if rank < len(by_folder[folder]) and len(chosen) < n:
                chosen.append(by_folder[folder][rank])
    return chosen


def noise_grid(
    folders: Sequence[GridFolder], path: Path, n_images: int = 6, size: int = 96
) -> None:
    """One row per folder: the same ``n_images`` images (relative paths common to all folders, any
    extension); a ``(folder, LoadTimeNoise)`` row shows its clean images with that noise."""
    noises = [f[1] if isinstance(f, tuple) else None for f in folders]
    roots = [Path(f[0] if isinstance(f, tuple) else f) for f in folders]
    for r in roots:
        if not r.is_dir():
            raise FileNotFoundError(
                f"noise-grid folder {r} not found; pass existing clean/noisy/denoised folders"
            )
    # Matched by relative path without extension: noisy/denoised trees are PNG whatever the clean
    # format.
    files = [
        {p.relative_to(r).with_suffix(""): p for p in r.rglob("*") if is_image_file(p)}
        for r in roots
    ]
    common = sorted(set.intersection(*[set(f) for f in files]))
    if not common:
        raise ValueError(
            f"no image path is common to {', '.join(map(str, roots))}; pass matching folders"
        )
    chosen = _spread_over_folders(common, n_images)
    tiles = []
    for f, noise in zip(files, noises):
        for rel in chosen:
            if noise is None:
                img = pil_to_tensor(Image.open(f[rel]).convert("RGB"))
            else:
                img = torch.from_numpy(noise.pixels(f[rel])).permute(2, 0, 1)
            tiles.append(
                center_crop(resize(img, size, antialias=True), [size, size]).float() / 255.0
            )
    grid = make_grid(torch.stack(tiles), nrow=len(chosen), padding=2, pad_value=1.0)
    with atomic_path(path) as tmp:
        save_image(grid, tmp, format="png")


def write_report(
    run_dirs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    labels: Sequence[str] | None = None,
    grid_folders: Sequence[GridFolder] | None = None,
    caption: str | None = None,
    extra_rows: dict[str, dict] | None = None,
) -> str:
    """Write the table and figures to ``out``; returns the Markdown table (after ``caption``, a line
    saying what was evaluated, e.g. the noise and the dataset, when given).

    Folders named after the pipeline's methods get its labels and, next to each trained method, its
    gain over the random-init reference row (evaluated on the same data). ``extra_rows`` (e.g. a
    raw-pixel row that is n/a for large images) come first."""
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(
            f"--labels has {len(labels)} names for {len(run_dirs)} run folders; give one per folder"
        )
    names = labels or [METHOD_LABELS.get(Path(d).name, Path(d).name) for d in run_dirs]
    rows = {**(extra_rows or {}), **{name: collect_metrics(d) for name, d in zip(names, run_dirs)}}
    if labels is None:
        add_gains(rows, {METHOD_LABELS[m]: METHOD_LABELS[r] for m, r in RANDOM_INIT_OF.items()})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # eval.checkpoints: all: the rows get the final export, then final vs best over exports and a
    # plot vs epoch
    over_checkpoints = add_checkpoint_results(
        rows, dict(zip(names, map(Path, run_dirs))), out, collect_metrics
    )
    table = (
        markdown_table(rows)
        + over_checkpoints
        + sweep_section(dict(zip(names, map(Path, run_dirs))), out)
    )
    if caption:
        table = f"{caption}\n\n{table}"
    atomic_write_text(out / TABLE_NAME, table)
    accuracy_bars(rows, out / BARS_NAME)
    if grid_folders:
        noise_grid(grid_folders, out / GRID_NAME)
    return table


def _experiment_inputs(
    args: argparse.Namespace,
) -> tuple[list[Path], Path, list[GridFolder], str, dict[str, dict]]:
    cfg = load_experiment(args.experiment, args.overrides)
    eval_root = Path(cfg.run_dir) / "eval"
    run_dirs = [
        eval_root / m for m in EVALUATED if (eval_root / m).is_dir()
    ]  # reference rows first
    if not run_dirs:
        raise FileNotFoundError(
            f"no evaluation folder under {eval_root}; run the evaluation stage first"
        )
    noisy_val, load_noise = noisy_tree_source(cfg, Path(cfg.data.noisy_root) / "val")
    grid = [
        Path(cfg.data.clean_root) / "val",
        noisy_val if load_noise is None else (noisy_val, load_noise),  # noise.at_load
        Path(cfg.data.denoised_root) / "val",
    ]
    out = Path(cfg.run_dir) / "report"
    settings = select_settings(cfg, ("noise.spec", "data.name", "data.clean_root"))
    check_settings(
        out,
        "report",
        settings,
        args.overwrite,
        what="the report",
        has_outputs=(out / TABLE_NAME).is_file(),
    )
    save_settings(out, "report", settings)
    caption = (
        f"Noise `{cfg.noise.spec}` on `{cfg.data.name}` (`{cfg.data.clean_root}`), "
        f"experiment `{cfg.name}`."
    )
    extra_rows = {}
    if cfg.eval.crop_size > MAX_PIXEL_SIDE:  # raw pixels are only evaluated on small images
        extra_rows[METHOD_LABELS["pixels"]] = {"linear top-1": "n/a", "kNN top-1": "n/a"}
    found = [g for g in grid if Path(g[0] if isinstance(g, tuple) else g).is_dir()]
    return run_dirs, out, found, caption, extra_rows


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Results table and figures from evaluation folders"
    )
    parser.add_argument(
        "--runs", nargs="+", default=[], metavar="RUN_DIR", help="evaluation folders"
    )
    parser.add_argument("--out", help="output folder of results.md and the figures")
    parser.add_argument(
        "--labels", nargs="+", help="method names of the rows (default: folder names)"
    )
    parser.add_argument(
        "--grid", nargs="+", metavar="DIR", help="clean, noisy (and denoised) image folders"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="with --experiment: replace a report of other settings",
    )
    add_experiment_args(parser)
    args, rest = parser.parse_known_args(argv)
    # Positional RUN_DIRs and KEY=VALUE overrides share the command line: split them by "=".
    positional = args.overrides + rest
    args.overrides = [p for p in positional if "=" in p]
    run_dirs = args.runs + [p for p in positional if "=" not in p]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    caption, extra_rows = None, None
    if args.experiment:
        run_dirs, out, grid, caption, extra_rows = _experiment_inputs(args)
    else:
        if not run_dirs or not args.out:
            raise ValueError("give RUN_DIR ... --out DIR, or --experiment FILE")
        out, grid = Path(args.out), args.grid
    table = write_report(run_dirs, args.out or out, args.labels, grid, caption, extra_rows)
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
