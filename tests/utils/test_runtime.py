"""Device resolution, the autocast context and the JSON-lines metrics writer."""

from __future__ import annotations

import json

import pytest
import torch

from utils.runtime import MetricsWriter, autocast, resolve_device

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")


def test_auto_is_cuda_when_available_else_cpu():
    assert resolve_device() == torch.device("cuda" if CUDA else "cpu")
    assert resolve_device("auto") == resolve_device()
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "meta", "mps", ""])
def test_an_unknown_device_names_the_key_and_the_value(name):
    with pytest.raises(ValueError) as info:
        resolve_device(name, "train.device")
    assert str(info.value) == (
        f"config key 'train.device' is {name!r}; valid: auto, cpu, cuda, cuda:N"
    )


def test_a_flag_is_named_as_a_flag():
    with pytest.raises(ValueError) as info:
        resolve_device("gpu", "--device")
    assert str(info.value) == "--device is 'gpu'; valid: auto, cpu, cuda, cuda:N"


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_a_cuda_device_says_what_to_use_instead(name):
    with pytest.raises(
        ValueError, match=f"'denoise.device' is '{name}' but this machine has no CUDA"
    ):
        resolve_device(name, "denoise.device")


@needs_cuda
def test_cuda_is_returned_as_asked_on_a_cuda_machine():
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, None])
def test_cpu_always_computes_in_fp32(dtype):
    a, b = torch.randn(8, 8, generator=torch.Generator().manual_seed(0)).split(4)
    with autocast(torch.device("cpu"), dtype):
        inside = a @ b.T
    assert inside.dtype == torch.float32
    assert torch.equal(inside, a @ b.T)


@needs_cuda
@pytest.mark.parametrize(
    "dtype, expected",
    [(torch.bfloat16, torch.bfloat16), (torch.float16, torch.float16), (torch.float32, None)],
)
def test_cuda_matmuls_run_in_the_autocast_dtype(dtype, expected):
    a = torch.randn(4, 4, device="cuda")
    with autocast(torch.device("cuda"), dtype):
        out = a @ a
    assert out.dtype == (expected or torch.float32)


def test_an_unsupported_autocast_dtype_is_refused():
    with pytest.raises(ValueError, match="float64"):
        autocast(torch.device("cpu"), torch.float64)


def test_metrics_are_one_json_object_per_line_in_json_dumps_default_format(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    writer.write({"iteration": 0, "loss": 0.5, "name": "a"})
    assert path.read_text() == '{"iteration": 0, "loss": 0.5, "name": "a"}\n'  # on disk at once
    writer.write({"iteration": 1, "loss": float("nan")})
    assert path.read_text().splitlines()[1] == '{"iteration": 1, "loss": NaN}'
    MetricsWriter(path).write({"iteration": 2})  # a new writer appends
    assert [json.loads(line)["iteration"] for line in path.read_text().splitlines()] == [0, 1, 2]


def test_a_writer_without_a_path_writes_nothing(tmp_path):
    writer = MetricsWriter(None)
    writer.write({"iteration": 0})
    writer.drop_from("iteration", 0)
    assert list(tmp_path.iterdir()) == []


def test_drop_from_removes_the_records_a_resumed_run_writes_again(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [
        '{"iteration": 0}',
        "not json",
        '{"iteration": 5}',
        "",
        '{"other": 9}',
        '{"iteration": 6}',
    ]
    path.write_text("\n".join(lines) + "\n")
    MetricsWriter(path).drop_from("iteration", 5)
    assert path.read_text() == '{"iteration": 0}\nnot json\n{"other": 9}\n'
    MetricsWriter(tmp_path / "absent.jsonl").drop_from("iteration", 0)
    assert not (tmp_path / "absent.jsonl").exists()
