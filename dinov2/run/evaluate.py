"""Stage 5 of the pipeline: evaluate one method of an experiment with a frozen backbone.

    python -m dinov2.run.evaluate --experiment configs/experiments/demo.yaml --method nc linear knn
    retrieval

Runs the named evaluations (default: all three) on the method's newest teacher checkpoint, each
through its own CLI (``dinov2/run/eval/{linear,knn,retrieval}.py --experiment FILE --method M``),
so settings come from the experiment's ``eval.*`` keys and outputs go to
``<run_dir>/eval/<method>``. A finished evaluation (its ``results_eval_*.json`` exists) is skipped;
``--overwrite`` redoes it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dinov2.run.eval import knn, linear, retrieval
from dinov2.run.experiment import EVALUATED, method_paths
from dinov2.run.pretrain import ensure_index
from utils.cli import command
from utils.config import load_experiment

EVALUATIONS = {"linear": linear.main, "knn": knn.main, "retrieval": retrieval.main}


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate one method of an experiment (stage 5)")
    parser.add_argument("--experiment", required=True, metavar="FILE", help="experiment YAML")
    parser.add_argument(
        "--method",
        required=True,
        choices=EVALUATED,
        help="which model of the comparison, or a reference row (python -m dinov2.run.reference)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="redo evaluations whose results exist"
    )
    parser.add_argument(
        "rest",
        nargs="*",
        metavar="EVAL|KEY=VALUE",
        help=f"evaluations ({', '.join(EVALUATIONS)}; default all) and experiment overrides",
    )
    args = parser.parse_args(argv)
    names = [r for r in args.rest if "=" not in r] or list(EVALUATIONS)
    overrides = [r for r in args.rest if "=" in r]
    unknown = [n for n in names if n not in EVALUATIONS]
    if unknown:
        parser.error(f"unknown evaluation {unknown[0]!r}; valid: {', '.join(EVALUATIONS)}")
    cfg = load_experiment(args.experiment, overrides)
    if {"linear", "knn"} & set(names):
        paths = method_paths(cfg, args.method)
        ensure_index(paths.eval_root, paths.extra)
    for name in names:
        sub_argv = ["--experiment", args.experiment, "--method", args.method, *overrides]
        rc = EVALUATIONS[name](sub_argv + (["--overwrite"] if args.overwrite else []))
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
