"""Atomic outputs: write to a hidden temp sibling, then rename it onto the target.

A reader (or a resumed stage) never sees a half-written file: either the old one or the new one.
The temp file is created with ``open(..., "x")`` rather than ``tempfile.mkstemp``, so the output
gets the usual permissions (0666 minus the umask, like any file the user writes): mkstemp's 0600
would leave denoised datasets, checkpoints and figures unreadable to the rest of a group on a
shared cluster.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _temp_sibling(path: Path, suffix: str) -> Path:
    # Hidden (dataset scans skip dot-files) and unique per process and call.
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path next to ``path`` for a writer that wants a file name; on success it is
    renamed onto ``path``, on error it is removed. The folder is created if needed.

    The temp name is ``.<name>.<pid>.<random><suffix>`` (a stage that sweeps leftovers of killed
    runs picks its own suffix): writers that infer the format from the extension (matplotlib,
    ``torchvision.utils.save_image``) need an explicit ``format``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path, suffix)
    open(tmp, "xb").close()  # reserve the name, with the umask's permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only still there when the writer failed


@contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "wb", suffix: str = ".tmp"
) -> Iterator[IO[Any]]:
    """``open(path, mode)`` through :func:`atomic_path`: the file appears at ``path`` when the block
    ends."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes a new file: mode must start with 'w', got {mode!r}")
    with atomic_path(path, suffix) as tmp, open(tmp, mode) as f:
        yield f


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (never a half-written checkpoint); returns ``path``."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)
