"""Optimizer parameter groups with layer-wise lr decay (official DINOv2 semantics and names).

For a backbone of ``L`` blocks the lr multiplier of a parameter is ``rate ** (L + 1 - layer_id)``:
``layer_id`` 0 for the embeddings (``pos_embed``, ``patch_embed``, ``cls_token``,
``register_tokens``, ``mask_token``), ``i + 1`` for block ``i``, ``L + 1`` for the rest (final
``norm``); heads have no blocks, hence multiplier 1. ``patch_embed`` gets an extra
``patch_embed_lr_mult``. Biases, norms and LayerScale ``gamma`` get no weight decay
(``wd_multiplier`` 0); the DINO head's ``last_layer`` is flagged ``is_last_layer`` so that its lr
can be frozen at the start of training.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from torch import nn

logger = logging.getLogger("dinov2")

_EMBEDDING_NAMES = ("pos_embed", "patch_embed", "mask_token", "cls_token", "register_tokens")


def _block_index(name: str, chunked_blocks: bool) -> int | None:
    """Index of the block that owns parameter ``name`` (``blocks.N.*`` or chunked
    ``blocks.C.N.*``)."""
    start = name.find("blocks.")
    if start < 0 or "residual." in name:
        return None
    parts = name[start:].split(".")
    return int(parts[2] if chunked_blocks else parts[1])


def get_vit_lr_decay_rate(
    name: str,
    lr_decay_rate: float = 1.0,
    num_layers: int = 12,
    force_is_backbone: bool = False,
    chunked_blocks: bool = False,
) -> float:
    """lr multiplier of parameter ``name`` of a ViT with ``num_layers`` blocks (see module
    docstring)."""
    layer_id = num_layers + 1
    if name.startswith("backbone") or force_is_backbone:
        block = _block_index(name, chunked_blocks)
        if any(e in name for e in _EMBEDDING_NAMES):
            layer_id = 0
        elif block is not None:
            layer_id = block + 1
    return lr_decay_rate ** (num_layers + 1 - layer_id)


def get_params_groups_with_decay(
    model: nn.Module, lr_decay_rate: float = 1.0, patch_embed_lr_mult: float = 1.0
) -> list[dict]:
    """One group per trainable parameter: ``params``, ``lr_multiplier``, ``wd_multiplier``,
    ``is_last_layer``, ``name``. ``model`` is a backbone (with ``n_blocks``) or a head."""
    chunked_blocks = False
    if hasattr(model, "n_blocks"):
        n_blocks, chunked_blocks = model.n_blocks, getattr(model, "chunked_blocks", False)
    elif hasattr(model, "blocks"):
        n_blocks = len(model.blocks)
    elif hasattr(model, "backbone"):
        n_blocks = len(model.backbone.blocks)
    else:
        n_blocks = 0
    groups = []
    for name, param in model.named_parameters():
        name = name.replace("_fsdp_wrapped_module.", "")
        if not param.requires_grad:
            continue
        lr_multiplier = get_vit_lr_decay_rate(
            name,
            lr_decay_rate,
            num_layers=n_blocks,
            force_is_backbone=n_blocks > 0,
            chunked_blocks=chunked_blocks,
        )
        no_decay = name.endswith(".bias") or "norm" in name or "gamma" in name
        if "patch_embed" in name:
            lr_multiplier *= patch_embed_lr_mult
        groups.append(
            {
                "params": param,
                "is_last_layer": "last_layer" in name,
                "lr_multiplier": lr_multiplier,
                "wd_multiplier": 0.0 if no_decay else 1.0,
                "name": name,
            }
        )
        logger.debug(
            "%s: lr_multiplier %s, wd_multiplier %s",
            name,
            lr_multiplier,
            groups[-1]["wd_multiplier"],
        )
    return groups


def fuse_params_groups(
    all_params_groups: Iterable[dict],
    keys: tuple[str, ...] = ("lr_multiplier", "wd_multiplier", "is_last_layer"),
) -> list[dict]:
    """Merge per-parameter groups with equal ``keys`` into one group each (fewer optimizer
    groups)."""
    fused: dict[str, dict] = defaultdict(lambda: {"params": []})
    for d in all_params_groups:
        identifier = "_".join(f"{k}{d[k]}" for k in keys)
        for k in keys:
            fused[identifier][k] = d[k]
        fused[identifier]["params"].append(d["params"])
    return list(fused.values())
