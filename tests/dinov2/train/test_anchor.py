"""NCT anchor regularizer: targets from the frozen teacher on denoised crops, head modes,
weighting, isolation."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from nc_helpers import (
    FAST,
    assert_states_equal,
    make_blurred_copy,
    model_state,
    read_metrics,
    train,
)
from train_helpers import TINY_CONFIG, make_cfg

from dinov2.data.paired import PairedDatasetError
from dinov2.loss import DINOLoss, iBOTPatchLoss
from dinov2.train.anchor import AnchorRegularizer, build_teacher_modules, read_teacher_state
from dinov2.train.checkpointing import list_checkpoints, load_checkpoint_file
from dinov2.train.ssl_meta_arch import SSLMetaArch
from dinov2.train.targets import Batch, compute_teacher_targets
from dinov2.train.train import METRICS_FILE
from dinov2.utils.config import load_training_config


@pytest.fixture()
def arch() -> SSLMetaArch:
    torch.manual_seed(0)
    model = SSLMetaArch(load_training_config(TINY_CONFIG))
    model.prepare_for_distributed_training()
    return model.train()


@pytest.fixture()
def frozen(arch) -> torch.nn.ModuleDict:
    """A teacher with weights of its own (seeded differently from ``arch``)."""
    torch.manual_seed(1)
    return build_teacher_modules(arch.cfg)


def paired_batch(
    batch_size: int = 3, n_local: int = 2, grid: int = 4, seed: int = 0, device: str = "cpu"
) -> Batch:
    """Collated batch with ``collated_global_crops_paired``; 3 masked patches per global crop."""
    g = torch.Generator().manual_seed(seed)
    n_global = 2 * batch_size
    masks = torch.zeros(n_global, grid * grid, dtype=torch.bool)
    for i in range(n_global):
        masks[i, torch.randperm(grid * grid, generator=g)[:3]] = True
    indices = masks.flatten().nonzero().flatten()
    global_crops = torch.randn(n_global, 3, 32, 32, generator=g)
    images = {
        "collated_global_crops": global_crops,
        "collated_global_crops_paired": global_crops
        + 0.3 * torch.randn(global_crops.shape, generator=g),
        "collated_local_crops": torch.randn(n_local * batch_size, 3, 16, 16, generator=g),
        "collated_masks": masks,
        "mask_indices_list": indices,
        "masks_weight": torch.full((len(indices),), 1 / 3),
        "upperbound": len(indices),
        "n_masked_patches": torch.tensor([len(indices)]),
    }
    return Batch.from_collated(images, torch.device(device))


def expected_targets(arch, backbone, heads, batch, teacher_temp=0.07):
    """Targets computed by hand: ``backbone`` on the paired crops, ``heads``, fresh centring
    state."""
    out = backbone(batch.extras["collated_global_crops_paired"], is_training=True)
    dino, ibot = (
        DINOLoss(arch.cfg.dino.head_n_prototypes),
        iBOTPatchLoss(arch.cfg.dino.head_n_prototypes),
    )
    return compute_teacher_targets(out, heads, batch, teacher_temp, dino_loss=dino, ibot_loss=ibot)


def heads_of(modules) -> dict:
    return {k: m for k, m in modules.items() if k != "backbone"}


def test_live_heads_are_the_ema_teacher_heads_and_frozen_heads_the_checkpoint_heads(arch, frozen):
    batch = paired_batch()
    live = AnchorRegularizer(arch.cfg, frozen, heads="live").get_targets(arch, batch, 0.07)
    frozen_mode = AnchorRegularizer(arch.cfg, frozen, heads="frozen").get_targets(arch, batch, 0.07)
    by_live_heads = expected_targets(arch, frozen.backbone, heads_of(arch.teacher), batch)
    by_frozen_heads = expected_targets(arch, frozen.backbone, heads_of(frozen), batch)
    torch.testing.assert_close(live.dino, by_live_heads.dino, rtol=0, atol=0)
    torch.testing.assert_close(live.ibot, by_live_heads.ibot, rtol=0, atol=0)
    torch.testing.assert_close(frozen_mode.dino, by_frozen_heads.dino, rtol=0, atol=0)
    torch.testing.assert_close(frozen_mode.ibot, by_frozen_heads.ibot, rtol=0, atol=0)
    assert not torch.allclose(live.dino, frozen_mode.dino)


def test_head_modes_agree_when_the_live_heads_equal_the_frozen_heads(arch, frozen):
    """The heads are the *only* difference between the modes (same backbone, same centring)."""
    arch.teacher.dino_head.load_state_dict(frozen.dino_head.state_dict())
    batch = paired_batch()
    live = AnchorRegularizer(arch.cfg, frozen, heads="live")(
        arch, batch, arch.get_student_output(batch), 0.07
    )
    froz = AnchorRegularizer(arch.cfg, frozen, heads="frozen")(
        arch, batch, arch.get_student_output(batch), 0.07
    )
    assert (
        live.keys()
        == froz.keys()
        == {"anchor_dino_local_crops_loss", "anchor_dino_global_crops_loss", "anchor_ibot_loss"}
    )
    for k in live:
        torch.testing.assert_close(live[k], froz[k], rtol=0, atol=0)


def test_anchor_loss_is_lambda_times_the_main_dino_and_ibot_terms_against_frozen_targets(
    arch, frozen
):
    batch = paired_batch()
    student = arch.get_student_output(batch)
    weight = 2.5
    losses = AnchorRegularizer(arch.cfg, frozen, weight=weight, heads="frozen")(
        arch, batch, student, 0.07
    )
    terms = arch.dino_ibot_losses(
        student, expected_targets(arch, frozen.backbone, heads_of(frozen), batch), batch
    )
    for name, value in terms.items():
        torch.testing.assert_close(losses[f"anchor_{name}"], weight * value)
    assert "anchor_koleo_loss" not in losses


def test_zero_weight_computes_nothing_and_leaves_the_rng_and_centres_untouched(arch, frozen):
    anchor = AnchorRegularizer(arch.cfg, frozen, weight=0.0)
    batch = paired_batch()
    rng = torch.get_rng_state()
    assert anchor(arch, batch, arch.get_student_output(batch), 0.07) == {}
    assert torch.equal(
        torch.get_rng_state(), rng
    )  # the tiny preset has no drop path: no draw expected
    assert torch.count_nonzero(anchor.dino_loss.center) == 0


def test_centring_state_is_the_anchors_own_and_starts_from_the_checkpoint(arch, frozen, tmp_path):
    arch.dino_loss.center.fill_(0.5)
    arch.ibot_patch_loss.center.fill_(-0.25)
    for k in ("dino_head", "backbone"):
        arch.teacher[k].load_state_dict(frozen[k].state_dict())
    torch.save({"model": arch.state_dict(), "iteration": 3}, tmp_path / "model_0000003.pth")
    teacher_state, centers = read_teacher_state(tmp_path / "model_0000003.pth")
    anchor = AnchorRegularizer(
        arch.cfg, build_teacher_modules(arch.cfg), centers, weight=1.0, heads="frozen"
    )
    anchor.frozen_teacher.load_state_dict(teacher_state)
    assert torch.all(anchor.dino_loss.center == 0.5) and torch.all(
        anchor.ibot_patch_loss.center == -0.25
    )
    anchor.get_targets(arch, paired_batch(), 0.07)
    # Its centre moved (update applied at once), the main loss's centre did not.
    assert not torch.all(anchor.dino_loss.center == 0.5)
    assert torch.all(arch.dino_loss.center == 0.5)


def test_frozen_teacher_is_outside_state_dict_optimizer_and_train_mode(arch, frozen):
    anchor = AnchorRegularizer(arch.cfg, frozen)
    arch.anchor = anchor
    arch.train()
    keys = set(arch.state_dict())
    assert {"anchor.dino_loss.center", "anchor.ibot_patch_loss.center"} <= keys
    assert not any(k.startswith("anchor.frozen") for k in keys)
    optimised = {id(p) for g in arch.get_params_groups() for p in g["params"]}
    assert not any(id(p) in optimised for p in frozen.parameters())
    assert not any(p.requires_grad for p in frozen.parameters())
    assert not frozen.training and not any(m.training for m in frozen.modules())


def test_student_gets_gradient_from_the_anchor_and_the_frozen_teacher_does_not(arch, frozen):
    before = copy.deepcopy(frozen.state_dict())
    batch = paired_batch()
    losses = AnchorRegularizer(arch.cfg, frozen)(arch, batch, arch.get_student_output(batch), 0.07)
    sum(losses.values()).backward()
    assert arch.student.backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in frozen.parameters())
    for k, v in frozen.state_dict().items():
        assert torch.equal(v, before[k])


def test_missing_paired_crops_name_the_dataset_string_to_use(arch, frozen):
    batch = paired_batch()
    batch.extras.clear()
    with pytest.raises(
        ValueError, match="PairedImageNet:split=TRAIN:root=NOISY:paired_root=DENOISED"
    ):
        AnchorRegularizer(arch.cfg, frozen)(arch, batch, arch.get_student_output(batch), 0.07)


def test_unknown_head_mode_is_rejected(arch, frozen):
    with pytest.raises(ValueError, match="anchor.heads"):
        AnchorRegularizer(arch.cfg, frozen, heads="ema")


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="bf16 autocast of the frozen teacher is CUDA-only"
)
def test_frozen_backbone_runs_in_bf16_on_cuda_and_moves_with_the_module(arch, frozen):
    arch = arch.cuda()
    anchor = AnchorRegularizer(arch.cfg, frozen).cuda()
    assert all(p.is_cuda for p in anchor.frozen_teacher.parameters())
    dtypes = []
    anchor.frozen_teacher.backbone.blocks[0].attn.qkv.register_forward_hook(
        lambda m, i, o: dtypes.append(o.dtype)
    )
    targets = anchor.get_targets(arch, paired_batch(device="cuda"), 0.07)
    assert dtypes == [torch.bfloat16] and torch.isfinite(targets.dino).all()


# --------------------------------------------------------------------------------- in training
SOURCE = (*FAST, "optim.epochs=3", "train.keep_checkpoint_epochs=[2]", "train.stop_at_iteration=4")


@pytest.fixture(scope="module")
def denoised_root(image_root, tmp_path_factory) -> Path:
    return make_blurred_copy(image_root, tmp_path_factory.mktemp("denoised"))


@pytest.fixture(scope="module")
def switch_checkpoint(denoised_root, tmp_path_factory) -> Path:
    """The N2N + DINOv2 run (on the denoised tree) stopped at its epoch-2 switch checkpoint."""
    out = tmp_path_factory.mktemp("n2n_dinov2")
    train(make_cfg(out, denoised_root, *SOURCE))
    return out / "model_0000004.pth"


def nc_cfg(out: Path, noisy: Path, switch: Path, *opts: str):
    return make_cfg(
        out,
        noisy,
        *FAST,
        "optim.epochs=2",
        "train.stop_at_iteration=3",
        f"branch.checkpoint={switch}",
        *opts,
    )


def nct_opts(
    noisy: Path, denoised: Path, switch: Path, weight: float, heads: str = "live"
) -> tuple[str, ...]:
    return (
        f"train.dataset_path=PairedImageNet:split=TRAIN:root={noisy}:paired_root={denoised}",
        f"anchor.checkpoint={switch}",
        f"anchor.weight={weight}",
        f"anchor.heads={heads}",
    )


def test_zero_weight_nct_gives_parameters_identical_to_nc(
    image_root, denoised_root, switch_checkpoint, tmp_path
):
    train(nc_cfg(tmp_path / "nc", image_root, switch_checkpoint))
    nct_model, _ = train(
        nc_cfg(
            tmp_path / "nct0",
            image_root,
            switch_checkpoint,
            *nct_opts(image_root, denoised_root, switch_checkpoint, 0.0),
        )
    )
    assert isinstance(nct_model.anchor, AnchorRegularizer)  # paired data read, anchor built, λ = 0
    assert_states_equal(
        model_state(tmp_path / "nct0" / "model_0000003.pth"),
        model_state(tmp_path / "nc" / "model_0000003.pth"),
    )


@pytest.mark.parametrize("heads", ["live", "frozen"])
def test_nct_trains_with_logged_anchor_terms_and_a_bit_identical_frozen_teacher(
    image_root, denoised_root, switch_checkpoint, tmp_path, heads
):
    model, _ = train(
        nc_cfg(
            tmp_path,
            image_root,
            switch_checkpoint,
            *nct_opts(image_root, denoised_root, switch_checkpoint, 4.0, heads),
        )
    )
    teacher_state, _ = read_teacher_state(switch_checkpoint)
    assert_states_equal(model.anchor.frozen_teacher.state_dict(), teacher_state)
    records = read_metrics(tmp_path)
    terms = ("anchor_dino_local_crops_loss", "anchor_dino_global_crops_loss", "anchor_ibot_loss")
    for r in records:
        assert all(r[k] > 0 for k in terms)
        main_terms = (
            r["dino_local_crops_loss"]
            + r["dino_global_crops_loss"]
            + 2 * r["koleo_loss"]
            + 2 * r["ibot_loss"]
        )
        assert r["total_loss"] == pytest.approx(main_terms + sum(r[k] for k in terms), rel=1e-5)
    # The run's checkpoint holds the anchor's centres but not the frozen weights.
    saved = load_checkpoint_file(tmp_path / "model_0000003.pth")["model"]
    assert "anchor.dino_loss.center" in saved and not any("frozen" in k for k in saved)


@pytest.mark.parametrize("legacy_keys", [False, True])
def test_nct_resume_is_exact_including_the_anchor_centres(
    image_root, denoised_root, switch_checkpoint, tmp_path, legacy_keys
):
    opts = nct_opts(image_root, denoised_root, switch_checkpoint, 2.0)
    train(
        nc_cfg(
            tmp_path / "straight", image_root, switch_checkpoint, *opts, "train.stop_at_iteration=4"
        )
    )
    train(
        nc_cfg(
            tmp_path / "split", image_root, switch_checkpoint, *opts, "train.stop_at_iteration=2"
        )
    )
    if legacy_keys:  # a checkpoint written when the anchor was SSLMetaArch.regularizer
        path = tmp_path / "split" / "model_0000002.pth"
        ckpt = torch.load(path, weights_only=True)
        ckpt["model"] = {
            ("regularizer." + k.removeprefix("anchor.") if k.startswith("anchor.") else k): v
            for k, v in ckpt["model"].items()
        }
        assert "regularizer.dino_loss.center" in ckpt["model"]
        torch.save(ckpt, path)
    train(
        nc_cfg(
            tmp_path / "split", image_root, switch_checkpoint, *opts, "train.stop_at_iteration=4"
        )
    )
    straight = model_state(tmp_path / "straight" / "model_0000004.pth", drop_prefix="-")
    assert_states_equal(
        model_state(tmp_path / "split" / "model_0000004.pth", drop_prefix="-"), straight
    )


def test_missing_pair_stops_the_run_before_the_first_step_listing_the_paths(
    image_root, switch_checkpoint, tmp_path
):
    broken = make_blurred_copy(image_root, tmp_path / "denoised")
    (broken / "train" / "class1" / "3.png").unlink()
    out = tmp_path / "run"
    with pytest.raises(
        PairedDatasetError, match=r"1 noisy images have no denoised counterpart .* class1/3\.png"
    ):
        train(
            nc_cfg(
                out,
                image_root,
                switch_checkpoint,
                *nct_opts(image_root, broken, switch_checkpoint, 1.0),
            )
        )
    assert not (out / METRICS_FILE).exists() and list_checkpoints(out) == []
