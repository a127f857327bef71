"""Pretraining settings and linear probes of the toy experiment, one seed at a time.

Settings (the paper's): ``clean`` (50 epochs on clean digits), ``noisy`` (50 epochs on noisy digits),
``clean_noisy`` (the clean run's epoch-30 weights, saved as a checkpoint, then 20 epochs on noisy
digits with a fresh Adam, as the paper's curriculum restarts its schedule). Every setting is probed
on noisy digits; ``clean`` also on clean digits. All randomness of a seed comes from CPU generators
seeded from ``(seed, purpose)``, so a seed gives the same numbers on every run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from toy_mnist.augment import random_view
from toy_mnist.data import Digits, noisy_copy
from toy_mnist.objective import EMBED_DIM, Encoder, ssl_loss
from utils.atomic import atomic_torch_save, atomic_write_text

log = logging.getLogger(__name__)

SETTINGS = ("clean", "noisy", "clean_noisy")
# generator streams of one seed; distinct so that adding a setting never shifts another one's draws
_STREAMS = {"noise": 0, "clean": 1, "noisy": 2, "clean_noisy": 3, "probe": 4}
Observer = Callable[[str, int, Encoder], None]


@dataclass
class ToyConfig:
    """The protocol (paper values as defaults); tests shrink the epochs."""

    clean_epochs: int = 50
    noisy_epochs: int = 50
    switch_epoch: int = 30  # clean_noisy starts from the clean run's weights after this epoch
    curriculum_epochs: int = 20
    probe_epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-4
    probe_lr: float = 1e-4
    cov_weight: float = 0.5
    noise_std: float = 0.4  # Gaussian std in [0, 1] intensity units (= sigma_255 102)

    def __post_init__(self) -> None:
        if not 0 < self.switch_epoch <= self.clean_epochs:
            raise ValueError(f"switch_epoch must be in 1..clean_epochs={self.clean_epochs}, got {self.switch_epoch}")


def generator(seed: int, stream: str) -> torch.Generator:
    """The CPU generator of one seed's ``stream`` (``noise``, a setting name, or ``probe``)."""
    return torch.Generator().manual_seed(seed * 1000 + _STREAMS[stream])


def _batches(n: int, batch_size: int, g: torch.Generator) -> list[torch.Tensor]:
    return list(torch.randperm(n, generator=g).split(batch_size))


def pretrain(
    encoder: Encoder,
    train_x: torch.Tensor,
    epochs: int,
    cfg: ToyConfig,
    g: torch.Generator,
    *,
    name: str,
    checkpoints: dict[int, Path] | None = None,
    observer: Observer | None = None,
    metrics: list[dict] | None = None,
) -> Encoder:
    """Train ``encoder`` on two random views of ``train_x`` ``[N, 28, 28]`` for ``epochs`` epochs.

    ``checkpoints`` maps an epoch to a file that gets the encoder's ``state_dict`` after that epoch;
    ``observer(name, epoch, encoder)`` is called before training (epoch 0) and after every epoch.
    """
    opt = torch.optim.Adam(encoder.parameters(), lr=cfg.lr)
    checkpoints = checkpoints or {}
    if observer:
        observer(name, 0, encoder)
    for epoch in tqdm(range(1, epochs + 1), desc=name, leave=False, unit="ep"):
        total, n_steps = 0.0, 0
        for idx in _batches(len(train_x), cfg.batch_size, g):
            if len(idx) < 2:  # the covariance of one row is undefined
                continue
            x = train_x[idx.to(train_x.device)]
            z = encoder(torch.cat([random_view(x, g), random_view(x, g)]))
            loss = ssl_loss(*z.chunk(2), cov_weight=cfg.cov_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n_steps = total + loss.item(), n_steps + 1
        if metrics is not None:
            metrics.append({"setting": name, "epoch": epoch, "loss": total / max(n_steps, 1)})
        if epoch in checkpoints:  # temp + rename: a killed run never leaves a truncated checkpoint
            atomic_torch_save(encoder.state_dict(), checkpoints[epoch])
        if observer:
            observer(name, epoch, encoder)
    return encoder


@torch.no_grad()
def _embed(encoder: Encoder, x: torch.Tensor) -> torch.Tensor:
    encoder.eval()
    return torch.cat([encoder(chunk) for chunk in x.split(1024)])


def linear_probe(
    encoder: Encoder,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    cfg: ToyConfig,
    g: torch.Generator,
) -> float:
    """Accuracy on ``test_x`` of ``Linear(32, 10)`` trained (Adam, CE) on the frozen encoder's features."""
    feats_train, feats_test = _embed(encoder, train_x), _embed(encoder, test_x)
    head = nn.Linear(EMBED_DIM, 10).to(train_x.device)
    with torch.no_grad():  # nn.Linear's default init, from the probe's generator
        bound = 1 / EMBED_DIM**0.5
        head.weight.copy_(torch.rand(head.weight.shape, generator=g) * 2 * bound - bound)
        head.bias.copy_(torch.rand(head.bias.shape, generator=g) * 2 * bound - bound)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.probe_lr)
    for _ in range(cfg.probe_epochs):
        for idx in _batches(len(feats_train), cfg.batch_size, g):
            idx = idx.to(train_x.device)
            loss = nn.functional.cross_entropy(head(feats_train[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        return (head(feats_test).argmax(dim=1) == test_y).float().mean().item()


def run_seed(
    digits: Digits,
    seed: int,
    cfg: ToyConfig,
    out_dir: Path,
    observer: Observer | None = None,
) -> dict[str, float]:
    """Pretrain the three settings and probe them; returns accuracies keyed ``<setting>/<probe data>``.

    Writes ``clean_epoch{switch}.pt`` (the clean→noisy starting point) and ``metrics.jsonl`` in ``out_dir``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    device = digits.train_x.device
    g_noise = generator(seed, "noise")
    noisy_train = noisy_copy(digits.train_x, cfg.noise_std, g_noise)
    noisy_test = noisy_copy(digits.test_x, cfg.noise_std, g_noise)
    switch_ckpt = out_dir / f"clean_epoch{cfg.switch_epoch}.pt"
    metrics: list[dict] = []
    kw = {"observer": observer, "metrics": metrics}

    encoders = {}
    g = generator(seed, "clean")
    encoders["clean"] = pretrain(
        Encoder(g).to(device),
        digits.train_x,
        cfg.clean_epochs,
        cfg,
        g,
        name="clean",
        checkpoints={cfg.switch_epoch: switch_ckpt},
        **kw,
    )
    g = generator(seed, "noisy")
    encoders["noisy"] = pretrain(Encoder(g).to(device), noisy_train, cfg.noisy_epochs, cfg, g, name="noisy", **kw)
    g = generator(seed, "clean_noisy")
    start = Encoder().to(device)
    start.load_state_dict(torch.load(switch_ckpt, map_location=device, weights_only=True))
    encoders["clean_noisy"] = pretrain(start, noisy_train, cfg.curriculum_epochs, cfg, g, name="clean_noisy", **kw)

    g = generator(seed, "probe")
    acc = {
        f"{name}/noisy": linear_probe(enc, noisy_train, digits.train_y, noisy_test, digits.test_y, cfg, g)
        for name, enc in encoders.items()
    }
    acc["clean/clean"] = linear_probe(
        encoders["clean"], digits.train_x, digits.train_y, digits.test_x, digits.test_y, cfg, g
    )
    lines = "".join(json.dumps({"seed": seed, **m}) + "\n" for m in metrics)
    atomic_write_text(out_dir / "metrics.jsonl", lines)
    log.info("seed %d: %s", seed, ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    return acc


def config_dict(cfg: ToyConfig) -> dict:
    return asdict(cfg)
