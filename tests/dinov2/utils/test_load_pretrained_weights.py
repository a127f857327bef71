"""Checkpoint loading: official layouts, prefixes, block layouts, strict report, safetensors."""

import pytest
import torch

from dinov2.layers import DINOHead
from dinov2.models import DinoVisionTransformer
from dinov2.utils.utils import (
    CheckpointMismatchError,
    CosineScheduler,
    load_pretrained_weights,
    save_backbone_safetensors,
)


def tiny(seed: int, **kwargs) -> DinoVisionTransformer:
    torch.manual_seed(seed)
    kw = dict(
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=4,
        num_heads=2,
        block_chunks=0,
        init_values=1e-5,
    )
    kw.update(kwargs)
    return DinoVisionTransformer(**kw).eval()


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def test_teacher_checkpoint_with_heads_loads_backbone_strictly(tmp_path):
    src, dst = tiny(0), tiny(1)
    head = DINOHead(32, 10, hidden_dim=16, bottleneck_dim=8)
    teacher = {f"backbone.{k}": v for k, v in src.state_dict().items()}
    teacher |= {f"dino_head.{k}": v for k, v in head.state_dict().items()}
    path = tmp_path / "teacher_checkpoint.pth"
    torch.save({"teacher": teacher}, path)  # the official eval export layout
    assert load_pretrained_weights(dst, path, checkpoint_key="teacher") == []
    assert_same_weights(src, dst)


def test_flat_teacher_backbone_prefix_and_ddp_module_prefix(tmp_path):
    src = tiny(0)
    path = tmp_path / "model.pth"
    torch.save({f"teacher.backbone.module.{k}": v for k, v in src.state_dict().items()}, path)
    dst = tiny(1)
    load_pretrained_weights(dst, path, checkpoint_key="teacher")
    assert_same_weights(src, dst)


def test_full_training_checkpoint_selects_teacher_not_student(tmp_path):
    teacher, student = tiny(0), tiny(2)
    model = {f"teacher.backbone.{k}": v for k, v in teacher.state_dict().items()}
    model |= {f"student.backbone.{k}": v for k, v in student.state_dict().items()}
    path = tmp_path / "model_0000099.rank_0.pth"
    torch.save({"model": model, "iteration": 99}, path)
    dst = tiny(1)
    load_pretrained_weights(dst, path, checkpoint_key="teacher")
    assert_same_weights(teacher, dst)


def test_hub_style_plain_backbone(tmp_path):
    src = tiny(0, num_register_tokens=2)
    path = tmp_path / "dinov2_vits14_reg4.pth"
    torch.save(src.state_dict(), path)
    dst = tiny(1, num_register_tokens=2)
    load_pretrained_weights(dst, path, checkpoint_key=None)
    assert_same_weights(src, dst)


@pytest.mark.parametrize("src_chunks, dst_chunks", [(2, 0), (0, 2), (4, 2)])
def test_block_layout_is_converted(tmp_path, src_chunks, dst_chunks):
    src, dst = tiny(0, block_chunks=src_chunks), tiny(1, block_chunks=dst_chunks)
    path = tmp_path / "ckpt.pth"
    torch.save(src.state_dict(), path)
    load_pretrained_weights(
        dst, path, checkpoint_key="teacher"
    )  # key absent: plain dict used as is
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(dst(x), src(x))


def test_strict_mismatch_report_names_file_and_every_problem(tmp_path):
    sd = tiny(0).state_dict()
    del sd["norm.weight"]
    sd["blocks.0.attn.extra"] = torch.zeros(3)
    sd["pos_embed"] = torch.zeros(1, 37, 32)  # a 48x48 grid (6x6 patches) + cls
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_pretrained_weights(tiny(1), path, checkpoint_key=None)
    lines = str(err.value).splitlines()
    assert str(path) in lines[0] and "3 problems" in lines[0]
    assert lines[1:] == [
        "missing key: norm.weight (32,)",
        "unexpected key: blocks.0.attn.extra (3,)",
        "shape mismatch: pos_embed checkpoint (1, 37, 32) vs model (1, 17, 32)"
        " (build the model with the checkpoint's img_size/patch_size)",
    ]


def test_non_strict_loads_matching_tensors_and_returns_problems(tmp_path):
    src = tiny(0)
    sd = src.state_dict()
    sd["pos_embed"] = torch.zeros(1, 37, 32)
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    dst = tiny(1)
    pos_before = dst.pos_embed.detach().clone()
    problems = load_pretrained_weights(dst, path, checkpoint_key=None, strict=False)
    assert len(problems) == 1 and problems[0].startswith("shape mismatch: pos_embed")
    assert torch.equal(dst.pos_embed, pos_before)
    assert torch.equal(dst.blocks[2].mlp.fc1.weight, src.blocks[2].mlp.fc1.weight)


class _NotATensor:
    pass


def test_loading_uses_weights_only_and_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"pos_embed": _NotATensor()}, path)  # unpickling would run arbitrary code
    with pytest.raises(RuntimeError, match=f"cannot read checkpoint {path}"):
        load_pretrained_weights(tiny(0), path, checkpoint_key=None)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained weights not found"):
        load_pretrained_weights(tiny(0), tmp_path / "nope.pth", checkpoint_key=None)


def test_safetensors_round_trip_and_no_silent_overwrite(tmp_path):
    src = tiny(0, num_register_tokens=1)
    path = save_backbone_safetensors(src, tmp_path / "backbone.safetensors")
    dst = tiny(1, num_register_tokens=1)
    load_pretrained_weights(dst, path, checkpoint_key=None)
    assert_same_weights(src, dst)
    with pytest.raises(FileExistsError, match="overwrite"):
        save_backbone_safetensors(dst, path)
    save_backbone_safetensors(dst, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "backbone.safetensors"
    ]  # no temp files left


def test_cosine_scheduler_values():
    sched = CosineScheduler(
        base_value=1.0, final_value=0.0, total_iters=12, warmup_iters=2, freeze_iters=2
    )
    assert [sched[i] for i in range(4)] == [0.0, 0.0, 0.0, 1.0]  # freeze, warm-up linspace(0, 1, 2)
    assert sched[4] == 1.0  # cosine starts at base (8 cosine iterations)
    assert sched[8] == pytest.approx(0.5)  # halfway: 0.5 * (1 + cos(pi / 2))
    assert sched[12] == 0.0 and sched[100] == 0.0
    with pytest.raises(ValueError, match="exceed total_iters"):
        CosineScheduler(1.0, 0.0, total_iters=3, warmup_iters=5)
