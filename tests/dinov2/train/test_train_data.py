"""The training data stream is a pure function of (seed, rank, stream position): resumable, worker-independent."""

from __future__ import annotations

import torch
from train_helpers import make_cfg

from dinov2.train.data import build_train_data_loader


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
    assert not torch.equal(straight[0]["collated_global_crops"], straight[1]["collated_global_crops"])


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
