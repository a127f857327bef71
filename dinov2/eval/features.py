"""Feature extraction from a frozen backbone, shared by kNN, the linear probe and retrieval.

Two feature kinds, both computed under ``torch.inference_mode`` (bf16 autocast on CUDA only):

- :func:`extract_cls_features`: the final normalised CLS token, ``model(x)`` of a DINOv2 backbone
  in eval mode, ``[N, D]``;
- :func:`extract_linear_features`: the linear-probe inputs of the last ``n`` blocks from
  ``get_intermediate_layers(x, n, return_class_token=True)``: CLS tokens ``[N, n, D]`` (block order)
  and the average patch token of the last block ``[N, D]``.

:class:`ImageDataset` wraps any ``(image, label)`` dataset with a transform and optional on-the-fly
noise, seeded per image index so that the noisy image never depends on batching or workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from utils.noise import NoiseSpec, add_noise_uint8, parse_noise_spec
from utils.runtime import autocast

log = logging.getLogger(__name__)


class ImageDataset(Dataset):
    """``base[i] = (PIL image, label)`` → ``(transform(noisy image), label)``.

    Noise (``noise`` spec, e.g. ``gauss_100``) is added to the uint8 image at its native resolution
    with ``numpy.random.default_rng([noise_seed, i])``, as a noisy copy of the dataset on disk would
    be.
    """

    def __init__(
        self,
        base: Dataset,
        transform: Callable | None = None,
        noise: str | NoiseSpec | None = None,
        noise_seed: int = 0,
    ) -> None:
        self.base = base
        self.transform = transform
        self.noise = parse_noise_spec(noise) if noise else None
        self.noise_seed = noise_seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label = self.base[index]
        if self.noise is not None:
            arr = np.asarray(image.convert("RGB"))
            arr = add_noise_uint8(arr, self.noise, np.random.default_rng([self.noise_seed, index]))
            image = Image.fromarray(arr)
        if self.transform is not None:
            image = self.transform(image)
        return image, label


def _loader(dataset: Dataset, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, drop_last=False
    )


@torch.inference_mode()
def extract_cls_features(
    model: torch.nn.Module,
    dataset: Dataset,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype = torch.bfloat16,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features [N, D] float32 on CPU, labels [N] int64)``: ``model(x)`` over the dataset in
    order."""
    device = torch.device(device)
    feats, labels = [], []
    for images, targets in tqdm(_loader(dataset, batch_size, num_workers), desc=desc, leave=False):
        with autocast(device, autocast_dtype):
            out = model(images.to(device, non_blocking=True))
        feats.append(out.float().cpu())
        labels.append(torch.as_tensor(targets, dtype=torch.int64))
    return torch.cat(feats), torch.cat(labels)


def linear_inputs(
    model: torch.nn.Module, images: torch.Tensor, n_last_blocks: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cls [B, n, D], avgpool [B, D])`` of one batch: last ``n`` blocks' CLS, last block's mean
    patch token."""
    outputs = model.get_intermediate_layers(images, n_last_blocks, return_class_token=True)
    cls = torch.stack([class_token for _, class_token in outputs], dim=1)
    avgpool = outputs[-1][0].mean(dim=1)
    return cls.float(), avgpool.float()


@torch.inference_mode()
def extract_linear_features(
    model: torch.nn.Module,
    dataset: Dataset,
    n_last_blocks: int = 4,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype = torch.bfloat16,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(cls [N, n, D], avgpool [N, D], labels [N])`` float32 on CPU, dataset order."""
    device = torch.device(device)
    cls_list, avg_list, labels = [], [], []
    for images, targets in tqdm(_loader(dataset, batch_size, num_workers), desc=desc, leave=False):
        with autocast(device, autocast_dtype):
            cls, avg = linear_inputs(model, images.to(device, non_blocking=True), n_last_blocks)
        cls_list.append(cls.cpu())
        avg_list.append(avg.cpu())
        labels.append(torch.as_tensor(targets, dtype=torch.int64))
    return torch.cat(cls_list), torch.cat(avg_list), torch.cat(labels)
