"""One error policy for every command: ``@command`` on its ``main(argv) -> int``.

Exit codes (documented in the README, "When something goes wrong"):

- ``0``: success (``main`` returned ``0`` or ``None``; any other int it returns is passed on);
- ``2``: a usage, configuration or input error the user fixes (:data:`INPUT_ERRORS`: ``ValueError``
  and its subclasses such as ``ConfigError``, a missing or already existing file, a file where a
  folder is expected or the other way round, a refused permission, any OmegaConf error);
  argparse's own usage errors exit 2 too (its ``SystemExit`` passes through unchanged);
- ``1``: a runtime failure (any other exception: a non-finite loss, CUDA out of memory, a bug);
- ``130``: interrupted (Ctrl-C).

An error is one line on stderr: ``error: <message>`` for an input error,
``error: <Type>: <message>`` for a runtime failure. ``NOISY_DINOV2_DEBUG=1`` in the environment
also prints the traceback (a debugging switch, not configuration: it changes no result and no exit
code).

The decorated ``main`` *returns* the code rather than raising ``SystemExit``, so that
``raise SystemExit(main())`` ends the process with it and a test or a caller in the same process
(the pipeline runs every stage's ``main`` in one process) reads it as a return value.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from omegaconf.errors import OmegaConfBaseException

USAGE_ERROR, RUNTIME_FAILURE, INTERRUPTED = 2, 1, 130
DEBUG_ENV = "NOISY_DINOV2_DEBUG"

INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # ConfigError, StaleOutputsError, CheckpointError, ImageDecodeError, ...
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    OmegaConfBaseException,  # a config error that reached the command without our wording
)

Main = Callable[[Sequence[str] | None], int | None]


def error_line(e: BaseException) -> str:
    """One line for an error message: a DataLoader worker's re-raised error carries the worker's
    traceback in its text, of which only the last line (the original message) is kept."""
    text = str(e).strip()
    if "Traceback (most recent call last)" in text:
        last = [ln for ln in text.splitlines() if ln.strip()][-1].strip()
        head, sep, rest = last.partition(": ")
        # drop "pkg.module.ErrorType: "
        text = rest if sep and "." in head and " " not in head else last
    return text.splitlines()[0] if text else type(e).__name__


def exit_code(e: BaseException) -> int:
    """The exit code of a command that failed with ``e`` (see the module docstring)."""
    if isinstance(e, KeyboardInterrupt):
        return INTERRUPTED
    return USAGE_ERROR if isinstance(e, INPUT_ERRORS) else RUNTIME_FAILURE


def report(e: BaseException) -> int:
    """Print the one ``error:`` line of ``e`` on stderr (its traceback too with
    ``NOISY_DINOV2_DEBUG=1``) and return its exit code."""
    code = exit_code(e)
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        traceback.print_exception(e)
    if code == INTERRUPTED:
        line = "error: interrupted"
    elif code == USAGE_ERROR:
        line = f"error: {error_line(e)}"
    else:
        message = str(e).strip()
        line = f"error: {type(e).__name__}" + (f": {error_line(e)}" if message else "")
    sys.stdout.flush()  # the command's own output first
    print(line, file=sys.stderr, flush=True)
    return code


def command(main: Main) -> Callable[[Sequence[str] | None], int]:
    """Decorate a command's ``main(argv=None)``: its return value (``None`` → 0) on success, the
    exit code of the module docstring with one ``error:`` line on stderr on failure. ``SystemExit``
    (argparse's ``--help`` and usage errors) passes through."""

    @functools.wraps(main)
    def wrapped(argv: Sequence[str] | None = None) -> int:
        try:
            rc = main(argv)
        except (Exception, KeyboardInterrupt) as e:
            return report(e)
        return 0 if rc is None else rc

    return wrapped
