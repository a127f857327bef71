"""The training data stream is a pure function of (seed, rank, stream position): resumable,
worker-independent."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch.utils.data import DataLoader
from train_helpers import REPO, TINY_CONFIG, make_cfg

from dinov2.train.data import build_train_data_loader
from dinov2.train.train import build_meta_arch, do_train, fix_random_seeds


def first_batches(cfg, start_iteration: int, n: int) -> list[dict]:
    it = iter(build_train_data_loader(cfg, start_iteration))
    return [next(it) for _ in range(n)]


def assert_same_batch(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert torch.equal(v, b[k]) if torch.is_tensor(v) else v == b[k], k


def test_loader_started_at_iteration_1_continues_the_uninterrupted_stream(tmp_path, image_root):
    cfg = make_cfg(tmp_path, image_root)
    straight = first_batches(cfg, 0, 3)
    resumed = first_batches(cfg, 1, 2)
    assert_same_batch(straight[1], resumed[0])
    assert_same_batch(straight[2], resumed[1])
    assert not torch.equal(
        straight[0]["collated_global_crops"], straight[1]["collated_global_crops"]
    )


def test_batches_do_not_depend_on_the_number_of_workers(tmp_path, image_root):
    in_process = first_batches(make_cfg(tmp_path, image_root, "train.num_workers=0"), 0, 2)
    with_workers = first_batches(make_cfg(tmp_path, image_root, "train.num_workers=2"), 0, 2)
    for a, b in zip(in_process, with_workers):
        assert_same_batch(a, b)


def test_loading_leaves_the_training_rng_untouched(tmp_path, image_root):
    cfg = make_cfg(tmp_path, image_root, "train.num_workers=0")
    torch.manual_seed(5)
    first_batches(cfg, 0, 1)
    after = torch.rand(3)
    torch.manual_seed(5)
    torch.testing.assert_close(after, torch.rand(3))


def test_batched_stream_resumes_exactly_and_does_not_depend_on_the_workers(tmp_path, image_root):
    cfg = make_cfg(tmp_path, image_root, "train.augmentation=batched")
    straight = first_batches(cfg, 0, 3)
    resumed = first_batches(cfg, 1, 2)
    assert_same_batch(straight[1], resumed[0])
    assert_same_batch(straight[2], resumed[1])
    assert not torch.equal(
        straight[0]["collated_global_crops"], straight[1]["collated_global_crops"]
    )
    with_workers = first_batches(
        make_cfg(tmp_path, image_root, "train.augmentation=batched", "train.num_workers=2"), 0, 2
    )
    for a, b in zip(straight, with_workers):
        assert_same_batch(a, b)


def test_batched_augmentation_on_the_cpu_runs_in_the_loader_workers(tmp_path, image_root):
    # Training on the CPU: the workers' batches are already augmented (in parallel with the step).
    cfg = make_cfg(tmp_path, image_root, "train.augmentation=batched", "train.num_workers=2")
    loader = build_train_data_loader(cfg, 0, device=torch.device("cpu"))
    assert isinstance(loader, DataLoader) and loader.num_workers == 2
    batch = next(iter(loader))
    crops = batch["collated_global_crops"]
    assert crops.dtype == torch.float32 and crops.shape[-1] == cfg.crops.global_crops_size
    assert "images_flat" not in batch and "first_position" not in batch


def test_batched_augmentation_in_the_main_process_gives_the_same_batches(tmp_path, image_root):
    # The GPU's arrangement (workers decode, the main process augments), here on the CPU.
    cfg = make_cfg(tmp_path, image_root, "train.augmentation=batched", "train.num_workers=2")
    cpu = torch.device("cpu")
    in_main = build_train_data_loader(cfg, 1, device=cpu, augment_in_loader=False)
    assert not isinstance(in_main, DataLoader)
    it = iter(in_main)
    for a, b in zip([next(it) for _ in range(2)], first_batches(cfg, 1, 2)):
        assert_same_batch(a, b)


def test_batched_path_gives_the_per_image_batch_layout_and_masks(tmp_path, image_root):
    per_image = first_batches(make_cfg(tmp_path, image_root, "train.augmentation=per_image"), 0, 1)[
        0
    ]
    batched = first_batches(make_cfg(tmp_path, image_root, "train.augmentation=batched"), 0, 1)[0]
    assert batched.keys() == per_image.keys()
    for k, v in per_image.items():
        if k.startswith("collated_") and k != "collated_masks":
            assert batched[k].shape == v.shape and batched[k].dtype == v.dtype, k
            assert not torch.equal(batched[k], v), k  # different crops, same layout
        else:  # the iBOT masks come from the same seeded draws
            assert torch.equal(batched[k], v) if torch.is_tensor(v) else batched[k] == v, k


def test_auto_augmentation_is_per_image_on_cpu_and_a_bad_value_names_the_key(tmp_path, image_root):
    auto = first_batches(make_cfg(tmp_path, image_root, "train.augmentation=auto"), 0, 1)[0]
    assert_same_batch(
        auto, first_batches(make_cfg(tmp_path, image_root, "train.augmentation=per_image"), 0, 1)[0]
    )
    with pytest.raises(ValueError, match="train.augmentation.*per_image, batched, auto"):
        build_train_data_loader(make_cfg(tmp_path, image_root, "train.augmentation=gpu"), 0)


def test_batched_paired_dataset_yields_paired_crops_with_the_same_parameters(tmp_path, image_root):
    copy = tmp_path / "denoised"
    shutil.copytree(image_root / "train", copy / "train")
    cfg = make_cfg(
        tmp_path,
        image_root,
        "train.augmentation=batched",
        f"train.dataset_path=PairedImageNet:split=TRAIN:root={image_root}:paired_root={copy}",
    )
    batch = first_batches(cfg, 0, 1)[0]
    assert torch.equal(batch["collated_global_crops_paired"], batch["collated_global_crops"])


def _train(cfg):
    fix_random_seeds(cfg.train.seed)
    model = build_meta_arch(cfg, torch.device("cpu"))
    do_train(cfg, model)
    return model


def test_batched_training_killed_after_4_iterations_and_resumed_equals_8_straight_iterations(
    tmp_path, image_root
):
    # 100-iteration schedule; the straight run stops after 8, the other process is SIGKILLed as soon
    # as
    # its iteration-4 checkpoint exists (never a clean exit), then the run resumes in a fresh
    # process state.
    common = (
        "train.augmentation=batched",
        "optim.epochs=1",
        "train.OFFICIAL_EPOCH_LENGTH=100",
        "train.checkpoint_period_iterations=4",
        "student.drop_path_rate=0.2",
    )
    straight = _train(
        make_cfg(tmp_path / "straight", image_root, *common, "train.stop_at_iteration=8")
    )

    killed = tmp_path / "killed"
    cmd = [
        sys.executable,
        str(REPO / "dinov2" / "run" / "train" / "train.py"),
        "--config-file",
        str(TINY_CONFIG),
        "--output-dir",
        str(killed),
        f"train.dataset_path=ImageNet:split=TRAIN:root={image_root}",
        "train.batch_size_per_gpu=4",
        *common,
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 600
        while not (killed / "model_0000004.pth").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint after 10 minutes"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert not (killed / "model_0000008.pth").exists(), (
        "killed too late: the run reached iteration 8"
    )

    resumed = _train(make_cfg(killed, image_root, *common, "train.stop_at_iteration=8"))
    expected, got = straight.state_dict(), resumed.state_dict()
    assert expected.keys() == got.keys()
    for k in expected:
        assert torch.equal(expected[k], got[k]), k
