"""The linear heads of the DINOv2 linear-probe protocol, trained together on one forward pass.

One head per (n last blocks ∈ ``n_last_blocks_list``) × (avgpool ∈ {False, True}) × (base lr ∈
:data:`LEARNING_RATES`): 2 × 2 × 13 = 52 heads by default. Head input: the CLS tokens of the last
``n`` blocks concatenated (block order), optionally followed by the average patch token of the last
block. Every head gets its own SGD parameter group with ``lr = base_lr × batch_size / 256``,
momentum 0.9, no weight decay, a cosine schedule to 0; the loss is the sum of the heads'
cross-entropies.

Inputs are the compact pair ``cls [B, n_max, D]`` (CLS tokens of the last ``n_max`` blocks) and
``avgpool [B, D]``, from :func:`dinov2.eval.features.linear_inputs` or a feature cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

LEARNING_RATES = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1)
N_LAST_BLOCKS_LIST = (1, 4)
MOMENTUM = 0.9


def scale_lr(base_lr: float, batch_size: int) -> float:
    """The linear scaling rule of the protocol: ``base_lr × global batch / 256``."""
    return base_lr * batch_size / 256.0


def create_linear_input(
    cls: torch.Tensor, avgpool: torch.Tensor, use_n_blocks: int, use_avgpool: bool
) -> torch.Tensor:
    """``[B, n·D (+ D)]`` head input from ``cls [B, n_max, D]`` and ``avgpool [B, D]``."""
    output = cls[:, -use_n_blocks:].flatten(1)
    if use_avgpool:
        output = torch.cat((output, avgpool), dim=-1)
    return output.float()


class LinearClassifier(nn.Module):
    """A linear layer on the features of the last ``use_n_blocks`` blocks (weights N(0, 0.01), bias
    0)."""

    def __init__(
        self, out_dim: int, use_n_blocks: int, use_avgpool: bool, num_classes: int = 1000
    ) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.use_n_blocks = use_n_blocks
        self.use_avgpool = use_avgpool
        self.num_classes = num_classes
        self.linear = nn.Linear(out_dim, num_classes)
        self.linear.weight.data.normal_(mean=0.0, std=0.01)
        self.linear.bias.data.zero_()

    def forward(self, cls: torch.Tensor, avgpool: torch.Tensor) -> torch.Tensor:
        return self.linear(create_linear_input(cls, avgpool, self.use_n_blocks, self.use_avgpool))


class AllClassifiers(nn.Module):
    """Named heads evaluated on the same inputs: ``forward → {name: logits [B, C]}``."""

    def __init__(self, classifiers_dict: dict[str, LinearClassifier]) -> None:
        super().__init__()
        self.classifiers_dict = nn.ModuleDict(classifiers_dict)

    def forward(self, cls: torch.Tensor, avgpool: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(cls, avgpool) for name, head in self.classifiers_dict.items()}

    def __len__(self) -> int:
        return len(self.classifiers_dict)


def classifier_name(n_blocks: int, avgpool: bool, lr: float, lr_format: str = ".5f") -> str:
    """Official naming: ``classifier_4_blocks_avgpool_True_lr_0_00050`` (the scaled lr, 5
    decimals)."""
    return f"classifier_{n_blocks}_blocks_avgpool_{avgpool}_lr_{lr:{lr_format}}".replace(".", "_")


def _lr_format(lrs: Sequence[float]) -> str:
    """5 decimals as official unless two scaled lrs would share a name (small batches): then
    ``.2e``."""
    return ".5f" if len({f"{lr:.5f}" for lr in lrs}) == len(lrs) else ".2e"


def setup_linear_classifiers(
    embed_dim: int,
    n_last_blocks_list: Sequence[int],
    learning_rates: Sequence[float],
    batch_size: int,
    num_classes: int,
) -> tuple[AllClassifiers, list[dict]]:
    """All heads and one SGD parameter group per head (``{"params", "lr", "name"}``)."""
    heads, groups = {}, []
    lr_format = _lr_format([scale_lr(lr, batch_size) for lr in learning_rates])
    for n in n_last_blocks_list:
        for avgpool in (False, True):
            for base_lr in learning_rates:
                lr = scale_lr(base_lr, batch_size)
                out_dim = embed_dim * (n + int(avgpool))
                head = LinearClassifier(out_dim, n, avgpool, num_classes)
                name = classifier_name(n, avgpool, lr, lr_format)
                heads[name] = head
                groups.append({"params": head.parameters(), "lr": lr, "name": name})
    return AllClassifiers(heads), groups


def make_optimizer(
    param_groups: list[dict], max_iter: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """SGD (momentum 0.9, weight decay 0) with a per-iteration cosine schedule to 0 over
    ``max_iter``."""
    optimizer = torch.optim.SGD(param_groups, momentum=MOMENTUM, weight_decay=0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max_iter, eta_min=0)
    return optimizer, scheduler


def train_step(
    classifiers: AllClassifiers,
    optimizer: torch.optim.Optimizer,
    scheduler,
    cls: torch.Tensor,
    avgpool: torch.Tensor,
    labels: torch.Tensor,
) -> float:
    """One SGD step of every head on a batch; returns the summed loss."""
    outputs = classifiers(cls, avgpool)
    loss = sum(nn.functional.cross_entropy(logits, labels) for logits in outputs.values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.item()


@torch.no_grad()
def evaluate_classifiers(
    classifiers: AllClassifiers, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
) -> dict[str, dict[str, float]]:
    """``{name: {"top1": %, "top5": %}}`` of every head over ``(cls, avgpool, labels)`` batches."""
    correct: dict[str, torch.Tensor] = {}
    total = 0
    for cls, avgpool, labels in batches:
        for name, logits in classifiers(cls, avgpool).items():
            k = min(5, logits.shape[1])
            hits = logits.topk(k, dim=1).indices == labels.unsqueeze(1)
            counts = torch.stack([hits[:, :1].any(1).sum(), hits.any(1).sum()])
            correct[name] = correct.get(name, 0) + counts
        total += labels.shape[0]
    return {
        name: {"top1": 100.0 * float(c[0]) / total, "top5": 100.0 * float(c[1]) / total}
        for name, c in correct.items()
    }


def best_classifier(metrics: dict[str, dict[str, float]]) -> tuple[str, dict[str, float]]:
    """The head with the highest validation top-1 (ties: the first in setup order)."""
    name = max(metrics, key=lambda k: metrics[k]["top1"])
    return name, metrics[name]
