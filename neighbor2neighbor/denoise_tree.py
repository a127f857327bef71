"""Denoise every image of a tree into 8-bit PNGs at the same relative paths (stage 3).

Idempotent and resumable like ``utils/generate_noise.py``: each output is written to a temp file
and renamed; existing outputs are kept (unless ``overwrite``); a completion marker written last
makes a finished tree skip itself. Images are decoded with ``utils.image_io.load_rgb_uint8``
(grayscale replicated, alpha dropped), so outputs are always RGB.

Deterministic: images are grouped by padded size and cut into batches from the *full* sorted file
list, and a partly done batch is recomputed whole, so every output pixel comes from the same batch
whether or not the run was interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from neighbor2neighbor.data import list_images
from neighbor2neighbor.denoiser import MULTIPLE, Denoiser, reflect_pad_to_multiple, to_uint8
from utils.atomic import atomic_open, atomic_write_text
from utils.image_io import ImageDecodeError, load_rgb_uint8, write_png_rgb
from utils.load_noise import LoadTimeNoise

log = logging.getLogger(__name__)
MARKER = ".n2n_denoise_complete"


@dataclass
class DenoiseSummary:
    """What one run did: images denoised now, images already there, wall time."""

    n_images: int
    n_written: int
    seconds: float
    skipped_complete: bool = False

    def line(self) -> str:
        if self.skipped_complete:
            return f"denoise: already complete ({self.n_images} images); use --overwrite to redo"
        rate = self.n_written / self.seconds if self.seconds > 0 else 0.0
        return (
            f"denoise: {self.n_written} images written, "
            f"{self.n_images - self.n_written} already there, "
            f"{self.seconds:.1f} s, {rate:.2f} images/s"
        )


def plan_outputs(
    src: Path, dst: Path, splits: Sequence[str], by_output: bool = False
) -> list[tuple[Path, Path]]:
    """``(source, output)`` pairs, sorted; output = ``dst / relative path`` with a ``.png`` suffix.

    ``by_output``: each split's pairs sorted by output path, the order of the noisy tree's files
    (``.png``) when clean images of other formats are read with the noise at load time.
    """
    roots = [src / s for s in splits] if splits else [src]
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        raise FileNotFoundError(
            f"source folder not found: {missing[0]} (denoise.src / denoise.splits)"
        )
    pairs, seen = [], {}
    for root in roots:
        root_pairs = [
            (p, (dst / p.relative_to(src)).with_suffix(".png")) for p in list_images(root)
        ]
        for path, out in sorted(root_pairs, key=lambda pair: pair[1]) if by_output else root_pairs:
            if out in seen:
                raise ValueError(
                    f"{path} and {seen[out]} would both be written to {out}; rename one"
                )
            seen[out] = path
            pairs.append((path, out))
    return pairs


def _padded_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as img:  # reads the header only
            w, h = img.size
    except Exception as e:
        raise ImageDecodeError(
            f"cannot decode image {path}: {str(e).splitlines()[0] if str(e) else e}"
        ) from None
    return -(-h // MULTIPLE) * MULTIPLE, -(-w // MULTIPLE) * MULTIPLE


def plan_batches(pairs: list[tuple[Path, Path]], batch_size: int) -> list[list[tuple[Path, Path]]]:
    """Batches of images with the same padded size (so they stack), in a fixed order."""
    groups: dict[tuple[int, int], list[tuple[Path, Path]]] = defaultdict(list)
    for pair in pairs:
        groups[_padded_size(pair[0])].append(pair)
    return [
        group[i : i + batch_size]
        for _, group in sorted(groups.items())
        for i in range(0, len(group), batch_size)
    ]


def _denoise_batch(
    denoiser: Denoiser, sources: list[Path], noise: LoadTimeNoise | None = None
) -> list[np.ndarray]:
    """Decode (and add the load-time ``noise``), reflect-pad each image to the group's padded size,
    denoise as one batch, crop back."""
    images = [load_rgb_uint8(p) if noise is None else noise.pixels(p) for p in sources]
    batch = torch.cat(
        [
            reflect_pad_to_multiple(torch.from_numpy(im.copy()).permute(2, 0, 1)[None].float())
            for im in images
        ]
    )
    out = to_uint8(denoiser(batch.div_(255.0)))
    return [out[i, : im.shape[0], : im.shape[1]] for i, im in enumerate(images)]


def denoise_tree(
    denoiser: Denoiser,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    splits: Sequence[str] = (),
    batch_size: int = 8,
    overwrite: bool = False,
    before_writing: Callable[[], object] | None = None,
    noise: LoadTimeNoise | None = None,
) -> DenoiseSummary:
    """Denoise ``src/<split>/**`` (or all of ``src`` when ``splits`` is empty) into ``dst``.

    ``before_writing`` is called once the paths are checked, before the first write (settings
    records). ``noise``: ``src`` is the clean tree and each image gets the noise
    ``utils.generate_noise`` writes for it as it is read, so ``dst`` gets the same bytes as from
    the noisy tree (same images, same batches), which need not exist."""
    src, dst = Path(src), Path(dst)
    src_r, dst_r = src.resolve(), dst.resolve()  # symlinks resolved: a link into src is src
    if src_r == dst_r:
        raise ValueError(
            f"denoise.dst must differ from denoise.src ({src}): outputs would replace the inputs"
        )
    if src_r in dst_r.parents:
        raise ValueError(
            f"denoise.dst {dst} is inside denoise.src {src}: outputs would become inputs; "
            "choose another dst"
        )
    if dst_r in src_r.parents:
        raise ValueError(
            f"denoise.src {src} is inside denoise.dst {dst}: the inputs would be overwritten; "
            "choose another dst"
        )
    marker = dst / MARKER
    if marker.is_file() and not overwrite:
        n_images = json.loads(marker.read_text()).get("n_images", 0)
        log.info("%s is complete (%s); nothing to do", dst, MARKER)
        return DenoiseSummary(n_images, 0, 0.0, skipped_complete=True)
    pairs = plan_outputs(src, dst, splits, by_output=noise is not None)
    batches = plan_batches(pairs, max(1, batch_size))
    if before_writing is not None:
        before_writing()
    marker.unlink(missing_ok=True)  # our own marker: the tree is being (re)written
    start, n_written = time.perf_counter(), 0
    with tqdm(total=len(pairs), desc="denoise", unit="img") as bar:
        for batch in batches:
            todo = [out for _, out in batch if overwrite or not out.is_file()]
            if todo:
                for (_, out), image in zip(
                    batch, _denoise_batch(denoiser, [p for p, _ in batch], noise)
                ):
                    if out in todo:
                        with atomic_open(out, "wb") as f:
                            write_png_rgb(f, image)
                        n_written += 1
            bar.update(len(batch))
    seconds = time.perf_counter() - start
    atomic_write_text(marker, json.dumps({"n_images": len(pairs), "src": str(src)}) + "\n")
    return DenoiseSummary(len(pairs), n_written, seconds)
