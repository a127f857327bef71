"""The CLI and its shell wrapper: a real run writes the table, JSON and plot; reruns skip finished seeds."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from toy_mnist.data import Digits
from toy_mnist.mlp_exp import main

REPO = Path(__file__).resolve().parents[2]
TINY_ARGS = [
    "--batch-size",
    "64",
    "--clean-epochs",
    "2",
    "--switch-epoch",
    "1",
    "--noisy-epochs",
    "1",
    "--curriculum-epochs",
    "1",
    "--probe-epochs",
    "1",
]


def _write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's idx format: magic (0, 0, uint8 code 8, n_dims), big-endian int32 dims, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _torchvision_mnist(root: Path, digits: Digits) -> Path:
    """A small MNIST in torchvision's layout (``<root>/MNIST/raw``) made of MNIST-5k digits."""
    small = digits.subset(200, 100)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, x, y in (("train", small.train_x, small.train_y), ("t10k", small.test_x, small.test_y)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", (x * 255).round().numpy())
        _write_idx(raw / f"{split}-labels-idx1-ubyte", y.numpy())
    return root


def test_shell_script_runs_every_setting_and_writes_table_json_and_plot(digits: Digits, tmp_path: Path) -> None:
    out = tmp_path / "toy"
    root = _torchvision_mnist(tmp_path / "mnist", digits)  # a real --mnist-root, quicker than MNIST-5k's parse
    proc = subprocess.run(
        ["sh", str(REPO / "toy_mnist" / "mlp_exp.sh"), "2", "--out", str(out), "--mnist-root", str(root), *TINY_ARGS],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| clean 30 → noisy 20 epochs | noisy (std 0.4) |" in proc.stdout and " ± " in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["data"] == "mnist" and set(results["per_seed"]) == {"0", "1"}
    for key, s in results["summary"].items():
        values = [acc[key] for acc in results["per_seed"].values()]
        assert s["n"] == 2 and abs(s["mean"] - sum(values) / 2) < 1e-12
        assert abs(s["std"] - abs(values[0] - values[1]) / 2**0.5) < 1e-9  # ddof=1 over 2 seeds
    with Image.open(out / "accuracy.png") as im:
        assert im.format == "PNG" and im.size[0] > 300
    assert (out / "seed_1" / "clean_epoch1.pt").is_file()
    lines = (out / "seed_0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["setting"] for line in lines] == ["clean", "clean", "noisy", "clean_noisy"]

    # a rerun reads the finished seeds instead of training again: same numbers
    again = main(["--seeds", "2", "--out", str(out), "--mnist-root", str(root), *TINY_ARGS])
    assert again["per_seed"] == results["per_seed"]
    # other data or another protocol in the same folder is refused unless --overwrite
    with pytest.raises(FileExistsError, match="--overwrite"):
        main(["--seeds", "1", "--out", str(out), "--n-train", "100", *TINY_ARGS])
    with pytest.raises(FileExistsError, match="--overwrite"):
        main(["--seeds", "1", "--out", str(out), "--mnist-root", str(root), *TINY_ARGS[:-1], "2"])


def test_missing_mnist_root_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--mnist-root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    message = str(exc.value.code)
    assert message.startswith("error: --mnist-root") and "\n" not in message and "MNIST-5k" in message
    assert not (tmp_path / "o").exists()  # nothing written before the data is there
