"""Atomic outputs: all-or-nothing replacement and ordinary (umask) permissions."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from utils.atomic import atomic_open, atomic_path, atomic_torch_save, atomic_write_text


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it afterwards."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_outputs_get_the_umask_permissions_not_mkstemp_0600(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_torch_save({"w": torch.ones(2)}, tmp_path / "b.pth")
    with atomic_path(tmp_path / "c.bin") as tmp:
        tmp.write_bytes(b"c")
    for name in ("a.txt", "b.pth", "c.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_open(target, "w") as f:
        f.write("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_folders_are_created_and_checkpoints_round_trip(tmp_path):
    path = atomic_torch_save({"w": torch.arange(3)}, tmp_path / "a" / "b" / "model.pth")
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(3))
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pth"]


def test_atomic_open_only_writes(tmp_path):
    with (
        pytest.raises(ValueError, match="mode must start with 'w'"),
        atomic_open(tmp_path / "x", "a"),
    ):
        pass
    assert not list(tmp_path.iterdir())
