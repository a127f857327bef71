"""The teacher exports of a pretraining run, in the official layout.

A run writes ``RUN/config.yaml`` and ``RUN/eval/training_<iteration>/teacher_checkpoint.pth``;
evaluations read the newest export or every one (``eval.checkpoints``, chosen by the experiment
layer: :mod:`dinov2.run.eval.checkpoints`).
"""

from __future__ import annotations

import re
from pathlib import Path

_TRAINING_DIR = re.compile(r"^training_(\d+)$")


def teacher_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of every export, oldest first.

    Exports are ``run_dir/eval/training_<iteration>/teacher_checkpoint.pth``.
    """
    found = []
    for d in (run_dir / "eval").glob("training_*"):
        m = _TRAINING_DIR.match(d.name)
        if m and (d / "teacher_checkpoint.pth").is_file():
            found.append((int(m[1]), d / "teacher_checkpoint.pth"))
    return sorted(found)


def newest_teacher_checkpoint(run_dir: Path) -> Path | None:
    """``run_dir/eval/training_<max iteration>/teacher_checkpoint.pth``; None if there is none."""
    found = teacher_checkpoints(run_dir)
    return found[-1][1] if found else None
