"""Settings of one seed: the clean→noisy start, reproducibility, the noise, the probe, the
step-matched schedule."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

import toy_mnist.train
from toy_mnist.config import paper_protocol
from toy_mnist.data import Digits, noise_spec, noisy_copy
from toy_mnist.objective import Encoder
from toy_mnist.train import epoch_scale, linear_probe, run_seed, step_matched, two_views

PAPER = paper_protocol()
TINY = replace(
    PAPER,
    clean_epochs=3,
    noisy_epochs=1,
    switch_epoch=2,
    curriculum_epochs=2,
    probe_epochs=1,
    batch_size=64,
)


@pytest.fixture(scope="module")
def small(digits: Digits) -> Digits:
    return digits.subset(200, 100)


def test_clean_noisy_starts_from_the_clean_runs_switch_epoch_weights(
    small: Digits, tmp_path: Path
) -> None:
    seen: dict[tuple[str, int], dict[str, torch.Tensor]] = {}

    def observe(name: str, epoch: int, encoder: Encoder) -> None:
        seen[name, epoch] = {k: v.detach().clone() for k, v in encoder.state_dict().items()}

    run_seed(small, seed=0, cfg=TINY, out_dir=tmp_path, observer=observe)
    at_switch = seen["clean", TINY.switch_epoch]
    ckpt = torch.load(tmp_path / "clean_epoch2.pt", weights_only=True)
    for key, value in at_switch.items():
        assert torch.equal(ckpt[key], value)
        assert torch.equal(seen["clean_noisy", 0][key], value)
        # the checkpoint is neither the clean run's end nor the noisy run's start
        assert not torch.equal(seen["clean", TINY.clean_epochs][key], value)
        assert not torch.equal(seen["noisy", 0][key], value)
    assert not torch.equal(
        seen["clean_noisy", 1]["net.0.weight"], at_switch["net.0.weight"]
    )  # and it trains on


def test_same_seed_gives_identical_results_and_another_seed_differs(
    small: Digits, tmp_path: Path
) -> None:
    first = run_seed(small, seed=5, cfg=TINY, out_dir=tmp_path / "a")
    again = run_seed(small, seed=5, cfg=TINY, out_dir=tmp_path / "b")
    run_seed(small, seed=6, cfg=TINY, out_dir=tmp_path / "c")
    assert set(first) == {"clean/noisy", "noisy/noisy", "clean_noisy/noisy", "clean/clean"}
    assert first == again
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (
        tmp_path / "b" / "metrics.jsonl"
    ).read_text()
    ckpt_a = torch.load(tmp_path / "a" / "clean_epoch2.pt", weights_only=True)
    ckpt_b = torch.load(tmp_path / "b" / "clean_epoch2.pt", weights_only=True)
    ckpt_c = torch.load(tmp_path / "c" / "clean_epoch2.pt", weights_only=True)
    assert torch.equal(ckpt_a["net.0.weight"], ckpt_b["net.0.weight"])
    assert not torch.equal(ckpt_a["net.0.weight"], ckpt_c["net.0.weight"])
    assert (tmp_path / "a" / "metrics.jsonl").read_text() != (
        tmp_path / "c" / "metrics.jsonl"
    ).read_text()


def test_noisy_digits_have_std_0_4_gaussian_noise_clipped_to_unit_range() -> None:
    assert noise_spec(0.4).tag == "gauss_102"
    x = torch.full((200, 28, 28), 0.5)
    y = noisy_copy(x, 0.4, torch.Generator().manual_seed(0))
    assert (
        y.min() >= 0 and y.max() <= 1 and y.min() == 0 and y.max() == 1
    )  # clipped, and it happens
    # unclipped part: P(|N(0, 0.4)| < 0.5) ≈ 0.789; the fraction of pixels left inside (0, 1)
    # matches
    inside = ((y > 0) & (y < 1)).float().mean().item()
    assert abs(inside - 0.7887) < 0.01


def test_switch_epoch_outside_the_clean_run_is_rejected() -> None:
    with pytest.raises(
        ValueError, match="'protocol.switch_epoch' must be in 1..protocol.clean_epochs=10"
    ):
        replace(PAPER, clean_epochs=10, switch_epoch=11)


def _identity(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return x


def test_two_views_of_one_digit_get_different_fresh_noise_at_every_load() -> None:
    x = torch.full((64, 28, 28), 0.5)
    g = torch.Generator().manual_seed(0)
    v1, v2 = two_views(x, 0.4, g, augment=_identity)  # no augmentation: what differs is the noise
    w1, _ = two_views(x, 0.4, g, augment=_identity)  # the same digits loaded again
    inside = (v1 > 0) & (v1 < 1) & (v2 > 0) & (v2 < 1)
    n1, n2 = (v1 - 0.5)[inside], (v2 - 0.5)[inside]
    # each view is noisy: N(0, 0.4) kept inside ±0.5 has std 0.4 sqrt(1 - 2a φ(a) / (2Φ(a) - 1)) =
    # 0.2596, a = 1.25
    assert abs(n1.std().item() - 0.2596) < 0.01 and abs(n2.std().item() - 0.2596) < 0.01
    assert (
        abs(torch.corrcoef(torch.stack([n1, n2]))[0, 1].item()) < 0.05
    )  # and the draws are independent
    assert not torch.equal(v1, w1)  # a new load gets new noise, not a fixed noisy copy
    c1, c2 = two_views(x, 0.0, g, augment=_identity)
    assert torch.equal(c1, x) and torch.equal(c2, x)  # clean settings see the clean digits


def test_noisy_probe_redraws_train_noise_every_epoch_and_noises_the_test_digits(
    small: Digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[torch.Tensor] = []

    def recording_noisy_copy(x: torch.Tensor, noise_std: float, g: torch.Generator) -> torch.Tensor:
        y = noisy_copy(x, noise_std, g)
        drawn.append(y)
        return y

    monkeypatch.setattr(toy_mnist.train, "noisy_copy", recording_noisy_copy)
    cfg = replace(PAPER, probe_epochs=3, batch_size=64)
    linear_probe(
        Encoder(torch.Generator().manual_seed(0)),
        small,
        cfg,
        torch.Generator().manual_seed(1),
        noise_std=0.4,
    )
    assert [len(x) for x in drawn] == [
        200,
        200,
        200,
        100,
    ]  # one draw per epoch on the train digits, then the test
    assert not torch.equal(drawn[0], drawn[1]) and not torch.equal(drawn[1], drawn[2])
    drawn.clear()
    linear_probe(
        Encoder(torch.Generator().manual_seed(0)),
        small,
        cfg,
        torch.Generator().manual_seed(1),
        noise_std=0,
    )
    assert drawn == []  # the clean probe sees clean digits


def test_step_matched_schedule_gives_mnist5k_the_papers_number_of_adam_steps() -> None:
    assert epoch_scale(4000) == 15 and epoch_scale(60_000) == 1
    cfg = step_matched(PAPER, epoch_scale(4000))
    assert (
        cfg.clean_epochs,
        cfg.switch_epoch,
        cfg.curriculum_epochs,
        cfg.noisy_epochs,
        cfg.probe_epochs,
    ) == (
        750,
        450,
        300,
        750,
        750,
    )
    steps_per_epoch = -(-4000 // 256)  # 16 batches (the last one partial)
    paper_steps = 50 * -(-60_000 // 256)  # 11,750
    assert abs(cfg.clean_epochs * steps_per_epoch - paper_steps) / paper_steps < 0.03
    assert step_matched(PAPER, 1.0) == PAPER  # full MNIST: the paper's epochs as they are
    assert (
        step_matched(replace(PAPER, clean_epochs=1, switch_epoch=1), 0.01).switch_epoch == 1
    )  # never below one
