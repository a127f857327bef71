"""DINOv2 pretraining CLI (one process, or one per GPU under torchrun / slurm).

    python dinov2/run/train/train.py --config-file dinov2/configs/train/vits16_in100.yaml \\
        --output-dir runs/vits16 train.dataset_path=ImageNet:split=TRAIN:root=/data/in100 [key=value
        ...]
    python -m dinov2.run.train --config-file ... --output-dir ...
    torchrun --nproc_per_node 4 dinov2/run/train/train.py --config-file ... --output-dir ...

Re-running the same command resumes from the newest valid checkpoint in the output dir.
Exit status (``utils.cli``): 0 on success, 2 on a bad config, argument or input, 1 on a runtime
failure such as a non-finite loss, 130 when interrupted.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

try:
    import dinov2  # noqa: F401
except ImportError:  # executed as a file from a checkout that is not installed: add the repo root
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

# after the fallback above, which makes them importable when this file is run from a checkout
from dinov2.train.train import get_args_parser  # noqa: E402
from dinov2.train.train import main as train_main  # noqa: E402
from utils.cli import command  # noqa: E402


@command
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = get_args_parser().parse_args(argv)
    summary = train_main(args)
    losses = ", ".join(f"{k} {v:.4f}" for k, v in sorted(summary["losses"].items()))
    print(
        f"trained to iteration {summary['iteration']} in {args.output_dir}"
        + (f": {losses}" if losses else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
