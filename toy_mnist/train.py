"""Pretraining settings and linear probes of the toy experiment, one seed at a time.

Settings (the paper's): ``clean`` (50 epochs on clean digits), ``noisy`` (50 epochs on noisy
digits), ``clean_noisy`` (the clean run's epoch-30 weights, saved as a checkpoint, then 20 epochs on
noisy digits with a fresh Adam, as the authors' script starts a new optimiser). Every setting is
probed on noisy digits; ``clean`` also on clean digits. Noise follows the authors' data pipeline: a
fresh Gaussian draw for each view of each digit every time it is loaded (noise, then augmentation),
and in the noisy probe a fresh draw for every training epoch and for the test digits. Epoch counts
are the paper's, over 60,000 digits; :func:`step_matched` scales them to a smaller training set so
that the number of Adam steps matches. All randomness of a seed comes from CPU generators seeded
from ``(seed, purpose)``, so a seed gives the same numbers on every run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
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
_STREAMS = {"clean": 1, "noisy": 2, "clean_noisy": 3, "probe_noisy": 4, "probe_clean": 5}
PAPER_N_TRAIN = 60_000  # the paper's epochs are over MNIST's full training set
Observer = Callable[[str, int, Encoder], None]


@dataclass
class ToyConfig:
    """The protocol: the ``protocol`` section of ``configs/toy_mnist.yaml``, whose defaults are the
    authors' values (epochs over 60k digits, see :func:`step_matched`)."""

    clean_epochs: int
    noisy_epochs: int
    switch_epoch: int  # clean_noisy starts from the clean run's weights after this epoch
    curriculum_epochs: int
    probe_epochs: int
    batch_size: int
    lr: float
    probe_lr: float
    cov_weight: float
    noise_std: float  # Gaussian std in [0, 1] intensity units (= sigma_255 102)

    def __post_init__(self) -> None:
        # messages name the config key (toy_mnist.config prefixes "config key ")
        if not 0 < self.switch_epoch <= self.clean_epochs:
            raise ValueError(
                f"'protocol.switch_epoch' must be in 1..protocol.clean_epochs={self.clean_epochs}, "
                f"got {self.switch_epoch}"
            )
        for name in (
            "clean_epochs",
            "noisy_epochs",
            "curriculum_epochs",
            "probe_epochs",
            "batch_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"'protocol.{name}' must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "probe_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"'protocol.{name}' must be > 0, got {getattr(self, name)}")
        for name in ("cov_weight", "noise_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"'protocol.{name}' must be >= 0, got {getattr(self, name)}")


def epoch_scale(n_train: int) -> float:
    """The factor that makes epochs over ``n_train`` digits as many steps as the paper's over
    60,000."""
    return PAPER_N_TRAIN / n_train


def step_matched(cfg: ToyConfig, scale: float) -> ToyConfig:
    """``cfg`` with every epoch count (and the switch point with them) multiplied by ``scale``,
    rounded, >= 1.

    On MNIST-5k's 4000 training digits ``scale`` is 15: the paper's 50 epochs over 60k digits (235
    Adam steps each at batch 256, 11,750 in all) become 750 epochs of 16 steps (12,000).
    """
    if scale <= 0:
        raise ValueError(f"epoch scale must be > 0, got {scale}")

    def scaled(epochs: int) -> int:
        return max(1, round(epochs * scale))

    return replace(
        cfg,
        clean_epochs=scaled(cfg.clean_epochs),
        noisy_epochs=scaled(cfg.noisy_epochs),
        switch_epoch=min(scaled(cfg.switch_epoch), scaled(cfg.clean_epochs)),
        curriculum_epochs=scaled(cfg.curriculum_epochs),
        probe_epochs=scaled(cfg.probe_epochs),
    )


def generator(seed: int, stream: str) -> torch.Generator:
    """The CPU generator of one seed's ``stream``: a setting name, ``probe_noisy`` or
    ``probe_clean``.

    Every probe of a seed starts from a fresh generator of its stream, so the noisy probes of the
    three settings see the same noise draws and batch order, and ``toy_mnist.probe`` reproduces them
    from a file.
    """
    return torch.Generator().manual_seed(seed * 1000 + _STREAMS[stream])


def _batches(n: int, batch_size: int, g: torch.Generator) -> list[torch.Tensor]:
    return list(torch.randperm(n, generator=g).split(batch_size))


def two_views(
    x: torch.Tensor, noise_std: float, g: torch.Generator, augment: Callable = random_view
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two views ``[B, 28, 28]`` of the digits ``x``: ``augment(noise(x))`` with an independent
    noise draw per view (``noise_std`` 0: clean digits), as the authors' dataset does on every
    load."""

    def view() -> torch.Tensor:
        return augment(noisy_copy(x, noise_std, g) if noise_std > 0 else x, g)

    first = view()
    return first, view()


def pretrain(
    encoder: Encoder,
    train_x: torch.Tensor,
    epochs: int,
    cfg: ToyConfig,
    g: torch.Generator,
    *,
    name: str,
    noise_std: float = 0.0,
    checkpoints: dict[int, Path] | None = None,
    observer: Observer | None = None,
    metrics: list[dict] | None = None,
) -> Encoder:
    """Train ``encoder`` on two random views of ``train_x`` ``[N, 28, 28]`` (clean digits) for
    ``epochs`` epochs.

    ``noise_std`` > 0 draws fresh Gaussian noise for each view of each digit at every step (the
    noisy settings).

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
            z = encoder(torch.cat(two_views(x, noise_std, g)))
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
def probe_features(
    encoder: Encoder, x: torch.Tensor, noise_std: float, g: torch.Generator
) -> torch.Tensor:
    """Frozen-encoder features ``[N, 32]`` of the digits ``x``, through a fresh noise draw when
    ``noise_std`` > 0."""
    encoder.eval()
    if noise_std > 0:
        x = noisy_copy(x, noise_std, g)
    return torch.cat([encoder(chunk) for chunk in x.split(1024)])


def linear_probe(
    encoder: Encoder,
    digits: Digits,
    cfg: ToyConfig,
    g: torch.Generator,
    *,
    noise_std: float,
) -> float:
    """Accuracy on the test digits of ``Linear(32, 10)`` trained (Adam, CE) on the frozen encoder's
    features.

    With ``noise_std`` > 0 the training digits get fresh noise every epoch and the test digits their
    own draw, as the authors' probe applies its noise transform on every load; with 0 both are
    clean.
    """
    device = digits.train_x.device
    head = nn.Linear(EMBED_DIM, 10).to(device)
    with torch.no_grad():  # nn.Linear's default init, from the probe's generator
        bound = 1 / EMBED_DIM**0.5
        head.weight.copy_(torch.rand(head.weight.shape, generator=g) * 2 * bound - bound)
        head.bias.copy_(torch.rand(head.bias.shape, generator=g) * 2 * bound - bound)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.probe_lr)
    feats_train = probe_features(encoder, digits.train_x, 0.0, g)
    for _ in range(cfg.probe_epochs):
        if noise_std > 0:
            feats_train = probe_features(encoder, digits.train_x, noise_std, g)
        for idx in _batches(len(feats_train), cfg.batch_size, g):
            idx = idx.to(device)
            loss = nn.functional.cross_entropy(head(feats_train[idx]), digits.train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    feats_test = probe_features(encoder, digits.test_x, noise_std, g)
    with torch.no_grad():
        return (head(feats_test).argmax(dim=1) == digits.test_y).float().mean().item()


def run_seed(
    digits: Digits,
    seed: int,
    cfg: ToyConfig,
    out_dir: Path,
    observer: Observer | None = None,
) -> dict[str, float]:
    """Pretrain the three settings and probe them; returns accuracies keyed
    ``<setting>/<probe data>``.

    Writes ``clean_epoch{switch}.pt`` (the clean→noisy starting point), ``<setting>_final.pt`` (each
    setting's final encoder) and ``metrics.jsonl`` in ``out_dir``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    device = digits.train_x.device
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
    encoders["noisy"] = pretrain(
        Encoder(g).to(device),
        digits.train_x,
        cfg.noisy_epochs,
        cfg,
        g,
        name="noisy",
        noise_std=cfg.noise_std,
        **kw,
    )
    g = generator(seed, "clean_noisy")
    start = Encoder().to(device)
    start.load_state_dict(torch.load(switch_ckpt, map_location=device, weights_only=True))
    encoders["clean_noisy"] = pretrain(
        start,
        digits.train_x,
        cfg.curriculum_epochs,
        cfg,
        g,
        name="clean_noisy",
        noise_std=cfg.noise_std,
        **kw,
    )

    for (
        name,
        enc,
    ) in encoders.items():  # the authors' ``<setting>_mlp_final.pth``, for toy_mnist.probe
        atomic_torch_save(enc.state_dict(), out_dir / f"{name}_final.pt")
    acc = {}
    for name, enc in encoders.items():
        acc[f"{name}/noisy"] = linear_probe(
            enc, digits, cfg, generator(seed, "probe_noisy"), noise_std=cfg.noise_std
        )
    acc["clean/clean"] = linear_probe(
        encoders["clean"], digits, cfg, generator(seed, "probe_clean"), noise_std=0.0
    )
    lines = "".join(json.dumps({"seed": seed, **m}) + "\n" for m in metrics)
    atomic_write_text(out_dir / "metrics.jsonl", lines)
    log.info("seed %d: %s", seed, ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    return acc


def config_dict(cfg: ToyConfig) -> dict:
    return asdict(cfg)
