"""``@command``: one ``error:`` line on stderr and the documented exit code for every failure."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from utils.cli import INTERRUPTED, RUNTIME_FAILURE, USAGE_ERROR, command, error_line
from utils.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
ENV.pop("NOISY_DINOV2_DEBUG", None)

SCRIPT = textwrap.dedent(
    """\
    import argparse
    import sys

    from utils.cli import command


    @command
    def main(argv=None):
        parser = argparse.ArgumentParser()
        parser.add_argument("what")
        args = parser.parse_args(argv)
        print("started")
        if args.what == "missing":
            open("/nonexistent/input.yaml")
        if args.what == "runtime":
            raise RuntimeError("loss is nan at iteration 3\\nsecond line of detail")
        if args.what == "interrupt":
            raise KeyboardInterrupt
        return 0 if args.what == "ok" else 5


    if __name__ == "__main__":
        raise SystemExit(main())
    """
)


def _run(script: Path, *argv: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), *argv],
        capture_output=True,
        text=True,
        env={**ENV, **env},
        cwd=REPO,
        timeout=120,
    )


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "command.py"
    path.write_text(SCRIPT)
    return path


@pytest.mark.parametrize(
    "what, rc, line",
    [
        ("ok", 0, None),
        ("other", 5, None),
        ("missing", 2, "error: [Errno 2] No such file or directory: '/nonexistent/input.yaml'"),
        ("runtime", 1, "error: RuntimeError: loss is nan at iteration 3"),
        ("interrupt", 130, "error: interrupted"),
    ],
)
def test_a_process_exits_with_the_documented_code_and_one_error_line(script, what, rc, line):
    proc = _run(script, what)
    assert proc.returncode == rc
    assert proc.stdout == "started\n"
    assert proc.stderr.splitlines() == ([line] if line else [])


def test_argparse_usage_errors_pass_through_with_their_own_message(script):
    proc = _run(script)  # the positional argument is missing
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].endswith(
        "error: the following arguments are required: what"
    )
    assert proc.stdout == ""


def test_the_debug_variable_adds_the_traceback_and_keeps_the_code(script):
    proc = _run(script, "runtime", NOISY_DINOV2_DEBUG="1")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert proc.stderr.splitlines()[-1] == "error: RuntimeError: loss is nan at iteration 3"


def test_a_real_command_with_a_missing_experiment_file_exits_2_with_one_line(tmp_path):
    missing = tmp_path / "nope.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "utils.generate_noise", "--experiment", str(missing)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: config file not found: {missing}"]


@pytest.mark.parametrize(
    "error, rc",
    [
        (ConfigError("config key 'a.b' is 3; valid: 1, 2"), USAGE_ERROR),
        (ValueError("bad value"), USAGE_ERROR),
        (FileNotFoundError("no such file: x.pth"), USAGE_ERROR),
        (FileExistsError("x exists; pass --overwrite"), USAGE_ERROR),
        (NotADirectoryError("x is a file"), USAGE_ERROR),
        (IsADirectoryError("x is a folder"), USAGE_ERROR),
        (PermissionError("x is read-only"), USAGE_ERROR),
        (RuntimeError("CUDA out of memory"), RUNTIME_FAILURE),
        (OSError("No space left on device"), RUNTIME_FAILURE),
        (KeyError("a bug"), RUNTIME_FAILURE),
        (KeyboardInterrupt(), INTERRUPTED),
    ],
)
def test_in_process_main_returns_the_code_of_its_error(error, rc, capsys):
    @command
    def main(argv=None):
        raise error

    assert main([]) == rc
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    if rc == RUNTIME_FAILURE:
        assert err[0].startswith(f"error: {type(error).__name__}: ")


def test_omegaconf_errors_are_config_errors(capsys):
    @command
    def main(argv=None):
        return OmegaConf.create({"noise": {"sigma_255": "???"}}).noise.sigma_255

    assert main([]) == USAGE_ERROR
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: Missing mandatory value: noise.sigma_255")


def test_success_returns_mains_int_and_none_is_zero():
    @command
    def returns_none(argv=None):
        return None

    @command
    def returns_three(argv=None):
        return 3

    assert returns_none([]) == 0 and returns_three([]) == 3
    assert returns_three.__name__ == "returns_three"


def test_system_exit_passes_through():
    @command
    def main(argv=None):
        argparse.ArgumentParser().parse_args(["--help"])

    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 0


def test_error_line_keeps_the_original_message_of_a_worker_traceback():
    worker = ValueError(
        "Caught ImageDecodeError in DataLoader worker process 0.\n"
        "Original Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "utils.image_io.ImageDecodeError: cannot decode /data/a.png: truncated\n"
    )
    assert error_line(worker) == "cannot decode /data/a.png: truncated"
    assert error_line(ValueError("first\nsecond")) == "first"
    assert error_line(ValueError("")) == "ValueError"
