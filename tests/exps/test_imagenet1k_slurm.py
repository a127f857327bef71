"""exps/imagenet1k_slurm.sh submits NCT after the whole N2N + DINOv2 job (its anchor is that run's
final checkpoint).

The script runs for real with ``PY`` pointing at a recorder: submissions (``-m dinov2.run.submit``)
are logged and answered with job ids, everything else goes to the real interpreter.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _recorder(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "submissions.log"
    script = tmp_path / "py"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "dinov2.run.submit" ]; then\n'
        f'  echo "$*" >> "{log}"\n'
        f'  wc -l < "{log}" | tr -d " "\n'  # job id = the submission's line number
        "  exit 0\n"
        "fi\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, log


def test_nct_is_submitted_after_the_whole_n2n_dinov2_job(tmp_path: Path) -> None:
    py, log = _recorder(tmp_path)
    exp = REPO / "configs" / "experiments" / "imagenet1k" / "gauss100.yaml"
    proc = subprocess.run(
        ["sh", str(REPO / "exps" / "imagenet1k_slurm.sh"), str(exp), "--", "--partition", "p"],
        env={**os.environ, "PY": str(py)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = {i + 1: line.split() for i, line in enumerate(log.read_text().splitlines())}

    def job_of(method: str) -> int:
        return next(i for i, args in jobs.items() if args[2] == "pretrain" and args[-1] == method)

    n2nd, nct = job_of("n2n_dinov2"), job_of("nct")
    assert (
        f"afterok:{n2nd}" in jobs[nct]
    )  # not a job that ends at the switch epoch: the run's final checkpoint
    assert jobs[nct][jobs[nct].index("--ngpus") + 1] == "4"
