"""Slurm submission through submitit: one task per GPU, automatic requeue that resumes.

    python -m dinov2.run.submit train --nodes 2 --ngpus 8 --partition learnlab \\
        --config-file dinov2/configs/train/vitb16_in1k.yaml --output-dir /checkpoint/me/run1
        [key=value ...]
    python -m dinov2.run.submit pretrain --ngpus 4 --experiment
    configs/experiments/imagenet1k/gauss100.yaml --method nc

Everything after the launcher's own flags is handed unchanged to the entry point's CLI. On
preemption or time-out slurm signals the job, submitit calls :meth:`SubmittedTask.checkpoint`, and
the job is requeued with the same arguments; the training loop then resumes from the newest
checkpoint in its output folder (checkpoints are written periodically, so nothing else needs saving
at signal time). ``--cluster local`` runs the same job as local processes (what the tests use).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import submitit

from utils.cli import command
from utils.config import load_experiment

log = logging.getLogger(__name__)

# name → "module:function" taking an argv list; each is also a standalone CLI.
ENTRY_POINTS = {
    "train": "dinov2.run.train.train:main",
    "linear": "dinov2.run.eval.linear:main",
    # the pipeline's stages, each taking --experiment FILE [key=value ...]
    "noise": "utils.generate_noise:main",
    "n2n_train": "neighbor2neighbor.train:main",
    "denoise": "neighbor2neighbor.denoise:main",
    "pretrain": "dinov2.run.pretrain:main",
    "evaluate": "dinov2.run.evaluate:main",
}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Submit a noisy-dinov2 job to slurm (or run it locally) through submitit",
        epilog="Arguments after the launcher flags go to the entry point, e.g. --config-file, "
        "--output-dir.",
    )
    parser.add_argument("entry", choices=sorted(ENTRY_POINTS), help="what to run")
    parser.add_argument("--nodes", type=int, default=1, help="number of nodes")
    parser.add_argument("--ngpus", type=int, default=8, help="GPUs per node (one task per GPU)")
    parser.add_argument("--timeout", type=int, default=2800, help="job time limit in minutes")
    parser.add_argument("--partition", default=None, help="slurm partition")
    parser.add_argument("--account", default=None, help="slurm account (passed through)")
    parser.add_argument("--qos", default=None, help="slurm QOS (passed through)")
    parser.add_argument(
        "--constraint", default=None, help="slurm constraint, e.g. volta32gb (passed through)"
    )
    parser.add_argument("--comment", default=None, help="slurm comment")
    parser.add_argument("--exclude", default=None, help="nodes to exclude")
    parser.add_argument("--cpus-per-task", type=int, default=10)
    parser.add_argument(
        "--mem-gb", type=int, default=0, help="memory per node in GB (0: slurm default)"
    )
    parser.add_argument(
        "--job-dir", default=None, help="submitit logs (default: <output dir>/submitit)"
    )
    parser.add_argument(
        "--max-requeues", type=int, default=30, help="requeues on time-out before giving up"
    )
    parser.add_argument("--dependency", default=None, help="slurm dependency, e.g. afterok:123:124")
    parser.add_argument("--cluster", choices=["slurm", "local", "debug"], default="slurm")
    parser.add_argument("--name", default=None, help="job name (default: noisy-dinov2-<entry>)")
    return parser


def _entry_function(entry: str):
    module_name, function_name = ENTRY_POINTS[entry].split(":")
    return getattr(importlib.import_module(module_name), function_name)


def _setup_distributed_env() -> None:
    """Export torchrun-style variables from the submitit job, for ``dinov2.distributed.enable``."""
    env = submitit.JobEnvironment()
    master_port = 20000 + zlib.crc32(str(env.job_id).encode()) % 20000
    os.environ.update(
        RANK=str(env.global_rank),
        LOCAL_RANK=str(env.local_rank),
        WORLD_SIZE=str(env.num_tasks),
        LOCAL_WORLD_SIZE=str(env.num_tasks // max(env.num_nodes, 1)),
        MASTER_ADDR=env.hostnames[0] if env.hostnames else "127.0.0.1",
        MASTER_PORT=os.environ.get("MASTER_PORT", str(master_port)),
    )


class SubmittedTask:
    """A picklable job: runs an entry point with its argv; on preemption, requeues itself
    unchanged."""

    def __init__(self, entry: str, argv: Sequence[str]):
        self.entry = entry
        self.argv = list(argv)

    def __call__(self) -> int:
        _setup_distributed_env()
        rc = _entry_function(self.entry)(self.argv)
        # The entry points return an exit status: a failed stage must fail the job (and its
        # dependants).
        if rc:
            raise RuntimeError(
                f"{self.entry} {' '.join(self.argv)} exited with status {rc}; see the log above"
            )
        return 0

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        # The loop checkpoints periodically and resumes from its output dir: requeue as is.
        log.warning("job signalled (preemption or time-out): requeueing %s", self.entry)
        return submitit.helpers.DelayedSubmission(type(self)(self.entry, self.argv))


def _flag_value(argv: Sequence[str], *flags: str) -> str | None:
    for flag in flags:
        if flag in argv and argv.index(flag) + 1 < len(argv):
            return argv[argv.index(flag) + 1]
        for a in argv:
            if a.startswith(flag + "="):
                return a.split("=", 1)[1]
    return None


def default_job_dir(argv: Sequence[str]) -> Path:
    """``<output dir>/submitit``, or ``<experiment run_dir>/submitit`` for the pipeline's stages."""
    output_dir = _flag_value(argv, "--output-dir", "--output_dir")
    if output_dir:
        return Path(output_dir) / "submitit"
    experiment = _flag_value(argv, "--experiment")
    if experiment:
        overrides = [a for a in argv if "=" in a and not a.startswith("-")]
        return Path(load_experiment(experiment, overrides).run_dir) / "submitit"
    return Path("outputs") / "submitit"


def make_executor(args: argparse.Namespace, folder: Path) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(
        folder=folder, cluster=args.cluster, slurm_max_num_timeout=args.max_requeues
    )
    params: dict = dict(
        name=args.name or f"noisy-dinov2-{args.entry}",
        timeout_min=args.timeout,
        nodes=args.nodes,
        tasks_per_node=max(
            args.ngpus, 1
        ),  # one task per GPU; CPU-only stages (--ngpus 0) get one task
        gpus_per_node=args.ngpus if args.cluster == "slurm" else 0,
        cpus_per_task=args.cpus_per_task,
    )
    if args.cluster == "slurm":
        params.update(mem_gb=args.mem_gb, slurm_signal_delay_s=120)
        extra = {
            "slurm_partition": args.partition,
            "slurm_account": args.account,
            "slurm_qos": args.qos,
            "slurm_constraint": args.constraint,
            "slurm_comment": args.comment,
            "slurm_exclude": args.exclude,
        }
        params.update({k: v for k, v in extra.items() if v is not None})
        if args.dependency:
            params["slurm_additional_parameters"] = {"dependency": args.dependency}
    executor.update_parameters(**params)
    return executor


def submit(argv: Sequence[str] | None = None) -> submitit.Job:
    """Parse the launcher flags, submit ``entry`` with the remaining arguments, return the job.

    The job id is printed alone on stdout (logs go to stderr):
    ``jid=$(python -m dinov2.run.submit …)``.
    """
    args, entry_argv = get_args_parser().parse_known_args(argv)
    folder = Path(args.job_dir) if args.job_dir else default_job_dir(entry_argv)
    executor = make_executor(args, folder / "%j")
    job = executor.submit(SubmittedTask(args.entry, entry_argv))
    log.info(
        "submitted job %s: %s %s (logs in %s)", job.job_id, args.entry, " ".join(entry_argv), folder
    )
    print(job.job_id)  # alone on stdout, so that scripts can chain dependencies
    return job


@command
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    submit(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
