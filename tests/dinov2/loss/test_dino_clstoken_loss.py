"""DINOLoss against hand-derived references: cross-entropy, centring EMA, Sinkhorn marginals,
DDP."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dinov2.loss import DINOLoss, iBOTPatchLoss


def _cross_entropy_reference(t_row: list[float], s_row: list[float], temp: float) -> float:
    """-sum_k t_k log softmax(s / temp)_k in plain Python."""
    z = [v / temp for v in s_row]
    log_norm = math.log(sum(math.exp(v) for v in z))
    return -sum(tk * (zk - log_norm) for tk, zk in zip(t_row, z))


def numpy_sinkhorn(logits: np.ndarray, temp: float, n_iterations: int) -> np.ndarray:
    """Independent SwAV/DINOv2 Sinkhorn-Knopp in float64: (B, K) logits -> (B, K) assignments."""
    q = np.exp(logits.astype(np.float64) / temp).T  # K x B
    n_prototypes, n_samples = q.shape
    q /= q.sum()
    for _ in range(n_iterations):
        q /= q.sum(axis=1, keepdims=True) * n_prototypes
        q /= q.sum(axis=0, keepdims=True) * n_samples
    return (q * n_samples).T


def test_forward_sums_batch_mean_cross_entropy_over_all_student_teacher_pairs():
    students = [
        torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.2, 0.1]]),
        torch.tensor([[0.0, 2.0, 0.0], [-1.0, 0.0, 1.0]]),
    ]
    teachers = [
        torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]),
        torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0]]),
    ]
    expected = 0.0
    for s in students:
        for t in teachers:
            per_image = [
                _cross_entropy_reference(t[b].tolist(), s[b].tolist(), 0.1) for b in range(2)
            ]
            expected += sum(per_image) / 2
    loss = DINOLoss(out_dim=3, student_temp=0.1)(students, teachers)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_softmax_center_teacher_subtracts_center_and_sharpens():
    loss = DINOLoss(out_dim=2)
    loss.center.copy_(torch.tensor([[1.0, -1.0]]))
    out = loss.softmax_center_teacher(torch.tensor([[1.0, -1.0], [2.0, 0.0]]), teacher_temp=0.5)
    # Row 0: centred logits (0, 0) -> uniform. Row 1: centred (1, 1) -> uniform too.
    torch.testing.assert_close(out, torch.full((2, 2), 0.5))
    out = loss.softmax_center_teacher(torch.tensor([[1.5, -1.0]]), teacher_temp=0.25)
    p0 = 1 / (1 + math.exp(-0.5 / 0.25))
    torch.testing.assert_close(out, torch.tensor([[p0, 1 - p0]]))


def test_center_is_momentum_ema_of_batch_mean_applied_at_next_centering():
    loss = DINOLoss(out_dim=2, center_momentum=0.9)
    batch1 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    batch2 = torch.tensor([[0.0, -10.0]])  # mean (0, -10)
    loss.update_center(batch1)
    assert torch.equal(loss.center, torch.zeros(1, 2)), "update is deferred to the next centring"
    loss.softmax_center_teacher(batch1, teacher_temp=0.1)
    torch.testing.assert_close(loss.center, torch.tensor([[0.2, 0.3]]))
    loss.update_center(batch2)
    loss.apply_center_update()
    torch.testing.assert_close(loss.center, torch.tensor([[0.9 * 0.2 + 0.0, 0.9 * 0.3 - 1.0]]))


def test_sinkhorn_knopp_teacher_matches_reference_and_has_uniform_marginals():
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    loss = DINOLoss(out_dim=4)
    q3 = loss.sinkhorn_knopp_teacher(logits, teacher_temp=0.5, n_iterations=3)
    np.testing.assert_allclose(
        q3.numpy(), numpy_sinkhorn(logits.numpy(), 0.5, 3), rtol=1e-5, atol=1e-6
    )
    # Every sample's assignment is a distribution; with enough iterations each prototype
    # receives B / K of the total mass (the equipartition constraint).
    q = loss.sinkhorn_knopp_teacher(logits, teacher_temp=0.5, n_iterations=200)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(6))
    torch.testing.assert_close(q.sum(dim=0), torch.full((4,), 6 / 4), rtol=1e-4, atol=1e-4)


def test_sinkhorn_knopp_teacher_stays_finite_for_large_logits():
    # exp(5 / 0.04) = exp(125) overflows float32; the algorithm is invariant to a global shift.
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [3.0, 3.0]])
    q = DINOLoss(out_dim=2).sinkhorn_knopp_teacher(logits, teacher_temp=0.04)
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q.sum(dim=1), torch.ones(3))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, logits: torch.Tensor, queue) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        shard = logits.chunk(2)[rank]
        dino = DINOLoss(out_dim=logits.shape[1])
        q = dino.sinkhorn_knopp_teacher(shard, teacher_temp=0.5)
        dino.update_center(shard)
        dino.apply_center_update()
        # iBOT: the rows are masked patches; B of the algorithm is the global patch count.
        ibot = iBOTPatchLoss(patch_out_dim=logits.shape[1])
        q_ibot = ibot.sinkhorn_knopp_teacher(shard, 0.5, torch.tensor([len(shard)]))
        ibot.update_center(shard.unsqueeze(0))
        ibot.apply_center_update()
        # numpy, not tensors: torch shares tensors through the sender, which exits right after.
        queue.put((rank, q.numpy(), dino.center.numpy(), q_ibot.numpy(), ibot.center.numpy()))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_match_one_process_on_the_global_batch():
    """Sinkhorn targets and centres of DINO and iBOT are those of the global batch."""
    torch.manual_seed(1)
    logits = torch.randn(8, 5)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.start_processes(
        _ddp_worker, args=(_free_port(), logits, queue), nprocs=2, start_method="spawn"
    )
    results = sorted((queue.get(timeout=60) for _ in range(2)), key=lambda r: r[0])
    dino = DINOLoss(out_dim=5)
    expected_q = dino.sinkhorn_knopp_teacher(logits, teacher_temp=0.5)
    dino.update_center(logits)
    dino.apply_center_update()
    ibot = iBOTPatchLoss(patch_out_dim=5)
    expected_q_ibot = ibot.sinkhorn_knopp_teacher(logits, 0.5, torch.tensor([8]))
    # One "image" per rank holding its patches: the centre is the mean of the two rank means.
    ibot_center = 0.1 * (logits[:4].mean(0) + logits[4:].mean(0)) / 2
    for index, expected in [(1, expected_q), (3, expected_q_ibot)]:
        got = np.concatenate([results[0][index], results[1][index]])
        torch.testing.assert_close(torch.from_numpy(got), expected)
    for result in results:
        torch.testing.assert_close(torch.from_numpy(result[2]), dino.center)
        torch.testing.assert_close(torch.from_numpy(result[4]), ibot_center.view(1, 1, 5))
