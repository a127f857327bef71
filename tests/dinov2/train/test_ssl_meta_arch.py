"""SSLMetaArch: official loss composition, EMA update, checkpoint keys, the extra-loss hook."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from train_helpers import TINY_CONFIG

from dinov2.train.ssl_meta_arch import SSLMetaArch
from dinov2.train.targets import Batch, StudentOutput, TeacherTargets
from dinov2.utils.config import load_training_config


@pytest.fixture()
def arch() -> SSLMetaArch:
    torch.manual_seed(0)
    cfg = load_training_config(TINY_CONFIG)
    model = SSLMetaArch(cfg)
    model.prepare_for_distributed_training()
    return model.train()


def synthetic_batch(batch_size: int = 3, n_local: int = 2, grid: int = 4, seed: int = 0) -> dict:
    """A collated batch: 2 global 32px crops, ``n_local`` local 16px crops, 3 masked patches per
    global crop."""
    g = torch.Generator().manual_seed(seed)
    n_global = 2 * batch_size
    masks = torch.zeros(n_global, grid * grid, dtype=torch.bool)
    for i in range(n_global):
        masks[i, torch.randperm(grid * grid, generator=g)[:3]] = True
    indices = masks.flatten().nonzero().flatten()
    return {
        "collated_global_crops": torch.randn(n_global, 3, 32, 32, generator=g),
        "collated_local_crops": torch.randn(n_local * batch_size, 3, 16, 16, generator=g),
        "collated_masks": masks,
        "mask_indices_list": indices,
        "masks_weight": torch.full((len(indices),), 1 / 3),
        "upperbound": len(indices),
        "n_masked_patches": torch.tensor([len(indices)]),
    }


def cross_entropy(
    target: torch.Tensor, student_logits: torch.Tensor, temp: float = 0.1
) -> torch.Tensor:
    return -(target * F.log_softmax(student_logits / temp, dim=-1)).sum(-1).mean()


def test_dino_terms_are_normalised_by_the_number_of_crop_pairs(arch):
    B, K, n_local = 3, 5, 2
    g = torch.Generator().manual_seed(1)
    local = [torch.randn(B, K, generator=g) for _ in range(n_local)]
    s_global = [torch.randn(B, K, generator=g) for _ in range(2)]
    t_for = [
        torch.softmax(torch.randn(B, K, generator=g), -1) for _ in range(2)
    ]  # t_for[i]: target of crop i
    student = StudentOutput(
        {}, {}, torch.zeros(2 * B, 4), torch.cat(local), torch.cat(s_global), None
    )
    targets = TeacherTargets(dino=torch.stack(t_for), ibot=None)
    batch = Batch.from_collated(synthetic_batch(B, n_local), torch.device("cpu"))
    arch.do_ibot = False
    losses = arch.dino_ibot_losses(student, targets, batch)
    n_pairs = (
        2 * 1 + 2 * n_local
    )  # 2 crossed global pairs + every local crop against both global crops
    local_expected = sum(cross_entropy(t, s) for s in local for t in t_for) / n_pairs
    global_expected = (
        cross_entropy(t_for[0], s_global[0]) + cross_entropy(t_for[1], s_global[1])
    ) / n_pairs
    torch.testing.assert_close(losses["dino_local_crops_loss"], local_expected)
    torch.testing.assert_close(losses["dino_global_crops_loss"], global_expected)


def test_teacher_targets_pair_each_global_crop_with_the_other(arch):
    batch = Batch.from_collated(synthetic_batch(), torch.device("cpu"))
    targets = arch.get_teacher_output(batch, teacher_temp=0.07)
    out = arch.teacher.backbone(batch.global_crops, is_training=True)["x_norm_clstoken"]
    logits = arch.teacher.dino_head(out)  # centre is still zero at the first step
    first_crop, second_crop = logits.chunk(2)
    torch.testing.assert_close(targets.dino[0], torch.softmax(second_crop / 0.07, -1))
    torch.testing.assert_close(targets.dino[1], torch.softmax(first_crop / 0.07, -1))
    assert targets.ibot.shape == (batch.n_masked_patches, arch.cfg.dino.head_n_prototypes)


def test_forward_backward_total_is_the_official_weighted_sum_and_teacher_gets_no_gradient(arch):
    losses = arch.forward_backward(synthetic_batch(), teacher_temp=0.04)
    expected = (
        losses["dino_local_crops_loss"]
        + losses["dino_global_crops_loss"]
        + 2 * losses["koleo_loss"]
        + 2 * losses["ibot_loss"]
    )
    torch.testing.assert_close(losses["total_loss"], expected)
    assert all(p.grad is None for p in arch.teacher.parameters())
    assert all(p.grad is not None for p in arch.student.backbone.blocks.parameters())


def test_anchor_losses_are_added_to_the_total_and_logged(arch):
    plain = arch.forward_backward(synthetic_batch(), teacher_temp=0.04)

    def anchor(meta_arch, batch, student, teacher_temp):
        return {"anchor_loss": 0.0 * student.global_cls_after_head.sum() + 1.5}

    torch.manual_seed(0)
    arch2 = SSLMetaArch(arch.cfg)
    arch2.load_state_dict(arch.state_dict())
    arch2.dino_loss.center.zero_()
    arch2.ibot_patch_loss.center.zero_()
    arch2.anchor = anchor
    with_reg = arch2.forward_backward(synthetic_batch(), teacher_temp=0.04)
    assert with_reg["anchor_loss"] == 1.5
    torch.testing.assert_close(with_reg["total_loss"], plain["total_loss"] + 1.5)


def test_update_teacher_is_an_exponential_moving_average(arch):
    with torch.no_grad():
        for p in arch.student.parameters():
            p.add_(1.0)
    student = [p.clone() for p in arch.student.parameters()]
    teacher = [p.clone() for p in arch.teacher.parameters()]
    arch.update_teacher(0.9)
    for s, t, new in zip(student, teacher, arch.teacher.parameters()):
        torch.testing.assert_close(new, 0.9 * t + 0.1 * s)


def test_state_dict_uses_official_keys(arch):
    keys = set(arch.state_dict())
    for k in (
        "student.backbone.cls_token",
        "student.backbone.blocks.0.ls1.gamma",
        "student.dino_head.mlp.0.weight",
        "teacher.dino_head.last_layer.weight_g",
        "dino_loss.center",
        "ibot_patch_loss.center",
    ):
        assert k in keys
    assert not any("module." in k for k in keys)


def test_student_pretrained_weights_load_a_teacher_export(tmp_path, arch):
    export = tmp_path / "teacher_checkpoint.pth"
    with torch.no_grad():
        arch.teacher.backbone.cls_token.fill_(0.5)
    torch.save({"teacher": arch.teacher.state_dict()}, export)
    cfg = load_training_config(TINY_CONFIG, [f"student.pretrained_weights={export}"])
    loaded = SSLMetaArch(cfg)
    for k, v in arch.teacher.backbone.state_dict().items():
        assert torch.equal(loaded.student.backbone.state_dict()[k], v), k
