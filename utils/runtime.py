"""Runtime helpers shared by every stage: the device, the autocast context, the metrics file.

- :func:`resolve_device`: ``auto`` → CUDA when available, else CPU; a bad name or CUDA on a machine
  without it is a one-line ``ValueError`` naming the config key;
- :func:`autocast`: bf16/fp16 autocast on CUDA, a no-op (fp32) on CPU and for fp32;
- :class:`MetricsWriter`: append-only JSON lines, one record per line, on disk when ``write``
  returns.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from utils.atomic import atomic_write_text

DEVICE_TYPES = ("cpu", "cuda")
AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)


def resolve_device(name: str | torch.device = "auto", key: str = "device") -> torch.device:
    """``auto`` → ``cuda`` when available, else ``cpu``; otherwise ``torch.device(name)``.

    Only CPU and CUDA devices are accepted. An unknown name, or CUDA on a machine without it, is a
    ``ValueError`` naming ``key`` (the config key, or the ``--flag``, the value came from) and the
    value.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    flag = key.startswith("-")
    where, fix = (key, f"{key} cpu") if flag else (f"config key '{key}'", f"{key}=cpu")
    if device is None or device.type not in DEVICE_TYPES:
        raise ValueError(f"{where} is {str(name)!r}; valid: auto, cpu, cuda, cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"{where} is {str(name)!r} but this machine has no CUDA device; use {fix} or auto"
        )
    return device


def autocast(
    device: torch.device | str, dtype: torch.dtype | None = torch.bfloat16
) -> contextlib.AbstractContextManager:
    """``torch.autocast`` in ``dtype`` (bf16 or fp16) on CUDA; a no-op context on CPU (which always
    runs fp32) and for ``dtype`` fp32 or ``None``. Another dtype is a ``ValueError``."""
    if dtype is not None and dtype != torch.float32 and dtype not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast dtype {dtype} is not one of bf16, fp16, fp32")
    if torch.device(device).type == "cuda" and dtype in AUTOCAST_DTYPES:
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


class MetricsWriter:
    """Appends ``json.dumps(record)`` plus ``\\n`` to ``path`` for each record.

    The file is opened and closed per record, so a line is complete on disk when :meth:`write`
    returns (a crash never leaves half a line behind a finished one). ``path=None`` writes nothing:
    a process other than the main one, or a run without an output folder.
    """

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None

    def write(self, record: Mapping[str, Any]) -> None:
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def drop_from(self, key: str, start: int) -> None:
        """Remove the records whose integer ``key`` is ``>= start`` (a resumed run writes them
        again) and blank lines; lines without ``key``, or not JSON, are kept. Atomic: the file is
        rewritten and renamed."""
        if self.path is None or not self.path.exists():
            return

        def position(line: str) -> int:
            try:
                return int(json.loads(line)[key])
            except (ValueError, KeyError, TypeError):
                return -1

        lines = self.path.read_text().splitlines()
        kept = [line for line in lines if line.strip() and position(line) < start]
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))
