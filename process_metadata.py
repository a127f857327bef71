"""Write the index ("extra") files of ImageFolder-style dataset roots.

    python process_metadata.py ROOT [ROOT ...] [--extra DIR]

Each ROOT holds ``train/<class>/*`` and/or ``val/<class>/*`` (any image extension) and optionally
``labels.txt`` (``class_id,class_name`` lines). The index goes to ``ROOT/extra`` (or
``--extra DIR``, one root only); its format is described in :mod:`dinov2.data.datasets.extra`.
Re-run it whenever files are added or removed: the dataset refuses a stale index.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dinov2.data.datasets.extra import SPLIT_DIRS, build_index, default_extra
from utils.cli import command
from utils.image_io import is_image_file


def has_images(root: str | os.PathLike) -> bool:
    """True when a split folder of ``root`` holds at least one image file (an empty index is
    refused)."""
    for split_dir in SPLIT_DIRS.values():
        for _, dirs, files in os.walk(Path(root) / split_dir):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            if any(is_image_file(f) for f in files):
                return True
    return False


@command
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python process_metadata.py", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "roots",
        nargs="+",
        metavar="ROOT",
        help="dataset root(s): ROOT/train/<class>/*, ROOT/val/...",
    )
    p.add_argument(
        "--extra", metavar="DIR", help="index folder (default ROOT/extra; one ROOT only)"
    )
    args = p.parse_args(argv)
    if args.extra is not None and len(args.roots) > 1:
        p.error("--extra takes a single ROOT")
    for root in args.roots:
        present = [d for d in SPLIT_DIRS.values() if (Path(root) / d).is_dir()]
        if present and not has_images(root):  # checked before anything is written
            raise ValueError(
                f"{root} has no image files under {' or '.join(present)}/; nothing to index"
            )
        counts = build_index(root, args.extra)
        summary = ", ".join(f"{split} {n} images" for split, n in counts.items())
        print(f"process_metadata: {root}: {summary} -> {args.extra or default_extra(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
