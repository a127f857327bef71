"""Run stages of the pipeline in order, in one process, for one experiment (what ``exps/*.sh``
call).

    python -m dinov2.run.pipeline --experiment configs/experiments/demo.yaml \\
        noise n2n denoise pretrain:dinov2 pretrain:n2n_dinov2 evaluate:dinov2:linear,knn report

Steps (each is the stage CLI of the README, called with ``--experiment FILE`` and the overrides):

- ``noise``: ``python -m utils.generate_noise``;
- ``n2n``: ``python -m neighbor2neighbor.train``;
- ``denoise``: ``python -m neighbor2neighbor.denoise``;
- ``reference``: ``python -m dinov2.run.reference`` (random-init export and raw-pixel config of the
  reference rows);
- ``pretrain:METHOD``: ``python -m dinov2.run.pretrain --method METHOD``;
- ``evaluate:METHOD:EVAL[,EVAL]``: ``python -m dinov2.run.evaluate --method METHOD EVAL ...``;
- ``sweep``: ``python -m dinov2.run.sweep`` (every trained method at several noise levels);
- ``report``: ``python -m dinov2.run.report``.

Every stage skips itself when finished and resumes when interrupted, so a re-run costs only what is
missing; running them in one process pays the interpreter and library start-up (several seconds)
once instead of once per stage. The first failing stage stops the run with its message and its
exit status (``utils.cli``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dinov2.run.evaluate import EVALUATIONS
from dinov2.run.experiment import EVALUATED, METHODS, REFERENCE_METHODS
from utils.cli import INTERRUPTED, USAGE_ERROR, command, report

SIMPLE_STAGES = {
    "noise": ("add noise", "utils.generate_noise"),
    "n2n": ("train Neighbor2Neighbor", "neighbor2neighbor.train"),
    "denoise": ("denoise", "neighbor2neighbor.denoise"),
    "reference": ("reference rows (random init, raw pixels)", "dinov2.run.reference"),
    "sweep": ("noise-level sweep", "dinov2.run.sweep"),
    "report": ("report", "dinov2.run.report"),
}


def parse_step(step: str, experiment: str, overrides: Sequence[str]) -> tuple[str, str, list[str]]:
    """``(label, module, argv)`` of one step string; ``ValueError`` naming the valid forms
    otherwise."""
    base = ["--experiment", experiment]
    kind, *rest = step.split(":")
    if kind in SIMPLE_STAGES and not rest:
        label, module = SIMPLE_STAGES[kind]
        return label, module, [*base, *overrides]
    if kind == "pretrain" and len(rest) == 1 and rest[0] in METHODS:
        return (
            f"pretrain {rest[0]}",
            "dinov2.run.pretrain",
            [*base, "--method", rest[0], *overrides],
        )
    if kind == "evaluate" and len(rest) == 2 and rest[0] in EVALUATED:
        evals = rest[1].split(",")
        if all(e in EVALUATIONS for e in evals):
            label = f"evaluate {rest[0]} ({' '.join(evals)})"
            return label, "dinov2.run.evaluate", [*base, "--method", rest[0], *evals, *overrides]
    raise ValueError(
        f"unknown step {step!r}; valid: {', '.join(SIMPLE_STAGES)}, pretrain:METHOD, "
        "evaluate:METHOD:EVAL[,EVAL] "
        f"(METHOD: {', '.join(METHODS)}, or for evaluate a reference row: "
        f"{', '.join(REFERENCE_METHODS)}; EVAL: {', '.join(EVALUATIONS)})"
    )


def run_steps(
    experiment: str,
    steps: Sequence[str],
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> int:
    """Run the steps in order; 0 when all succeed, else the exit status of the first failing stage
    (:mod:`utils.cli`: 2 input error, 1 runtime failure, 130 interrupted; its message on stderr)."""
    name = Path(experiment).stem
    planned = [parse_step(s, experiment, overrides) for s in steps]  # a typo fails before any work
    for label, module, argv in planned:
        log(f"==> [{name}] {label}")
        t0 = time.perf_counter()
        try:
            rc = importlib.import_module(module).main(argv)
        except SystemExit as e:  # argparse's usage errors
            rc = e.code if isinstance(e.code, int) else USAGE_ERROR
        except Exception as e:  # a stage main without @command: the same line and code
            rc = report(e)
        sys.stdout.flush()
        if rc == INTERRUPTED:  # Ctrl-C in a stage (its @command said so): stop here
            return rc
        if rc:
            print(
                f"error: stage '{label}' of {experiment} failed (message above); fix it and "
                "re-run: finished stages are skipped",
                file=sys.stderr,
            )
            return rc
        log(f"<== [{name}] {label}: {time.perf_counter() - t0:.0f} s")
    return 0


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run pipeline stages in order for one experiment")
    parser.add_argument("--experiment", required=True, metavar="FILE", help="experiment YAML")
    parser.add_argument(
        "steps",
        nargs="+",
        metavar="STEP|KEY=VALUE",
        help="steps (see the module doc) and experiment overrides",
    )
    args = parser.parse_args(argv)
    if not Path(args.experiment).is_file():
        raise FileNotFoundError(f"experiment file not found: {args.experiment}")
    overrides = [s for s in args.steps if "=" in s]
    steps = [s for s in args.steps if "=" not in s]
    return run_steps(args.experiment, steps, overrides, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    sys.exit(main())
