"""Settings of one seed: the clean→noisy start, reproducibility, the noise, the probe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from toy_mnist.data import Digits, noise_spec, noisy_copy
from toy_mnist.objective import Encoder
from toy_mnist.train import ToyConfig, run_seed

TINY = ToyConfig(clean_epochs=3, noisy_epochs=1, switch_epoch=2, curriculum_epochs=2, probe_epochs=1, batch_size=64)


@pytest.fixture(scope="module")
def small(digits: Digits) -> Digits:
    return digits.subset(200, 100)


def test_clean_noisy_starts_from_the_clean_runs_switch_epoch_weights(small: Digits, tmp_path: Path) -> None:
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
    assert not torch.equal(seen["clean_noisy", 1]["fc1.weight"], at_switch["fc1.weight"])  # and it trains on


def test_same_seed_gives_identical_results_and_another_seed_differs(small: Digits, tmp_path: Path) -> None:
    first = run_seed(small, seed=5, cfg=TINY, out_dir=tmp_path / "a")
    again = run_seed(small, seed=5, cfg=TINY, out_dir=tmp_path / "b")
    run_seed(small, seed=6, cfg=TINY, out_dir=tmp_path / "c")
    assert set(first) == {"clean/noisy", "noisy/noisy", "clean_noisy/noisy", "clean/clean"}
    assert first == again
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()
    ckpt_a = torch.load(tmp_path / "a" / "clean_epoch2.pt", weights_only=True)
    ckpt_b = torch.load(tmp_path / "b" / "clean_epoch2.pt", weights_only=True)
    ckpt_c = torch.load(tmp_path / "c" / "clean_epoch2.pt", weights_only=True)
    assert torch.equal(ckpt_a["fc1.weight"], ckpt_b["fc1.weight"])
    assert not torch.equal(ckpt_a["fc1.weight"], ckpt_c["fc1.weight"])
    assert (tmp_path / "a" / "metrics.jsonl").read_text() != (tmp_path / "c" / "metrics.jsonl").read_text()


def test_noisy_digits_have_std_0_4_gaussian_noise_clipped_to_unit_range() -> None:
    assert noise_spec(0.4).tag == "gauss_102"
    x = torch.full((200, 28, 28), 0.5)
    y = noisy_copy(x, 0.4, torch.Generator().manual_seed(0))
    assert y.min() >= 0 and y.max() <= 1 and y.min() == 0 and y.max() == 1  # clipped, and it happens
    # unclipped part: P(|N(0, 0.4)| < 0.5) ≈ 0.789; the fraction of pixels left inside (0, 1) matches
    inside = ((y > 0) & (y < 1)).float().mean().item()
    assert abs(inside - 0.7887) < 0.01


def test_switch_epoch_outside_the_clean_run_is_rejected() -> None:
    with pytest.raises(ValueError, match="switch_epoch"):
        ToyConfig(clean_epochs=10, switch_epoch=11)
