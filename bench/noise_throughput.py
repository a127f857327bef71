"""Images/s of ``utils.generate_noise`` vs a straightforward baseline, on generated 500×375 JPEGs.

    python bench/noise_throughput.py [--n 200] [--workers 2] [--noise gauss_100]

Both paths read the same JPEGs and write PNGs of the same noisy pixels:

- baseline (written here, the straightforward way): one process, float64 numpy arithmetic,
  ``PIL.Image.save`` PNG at its default compression;
- ours: :func:`utils.generate_noise.generate_noise` with ``--workers`` processes
  (:func:`utils.noise.add_noise_uint8`) and the fast PNG writer of :mod:`utils.image_io`.

The baseline draws its noise from the same per-image generators
(:func:`utils.generate_noise.image_rng`) and the same float32 standard-normal / Poisson draws, with
the same float64 arithmetic; the script decodes both output trees and reports the fraction of
identical pixel values (expected: 1) and the largest difference. Timings are wall-clock of the whole
tree (worker start-up and listing included); the import of torch is not timed. The CPU time of each
path (workers included) is reported too: on a machine shared with other jobs the wall-clock ratio
understates what parallel workers give, while the CPU-time ratio does not depend on the load. Prints
one Markdown table row and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image
from tqdm import tqdm

from utils.cli import command
from utils.generate_noise import generate_noise, image_rng, list_source_images, noisy_rel_path
from utils.noise import NoiseSpec, parse_noise_spec

WIDTH, HEIGHT = 500, 375
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina")


def make_jpegs(root: Path, n_images: int) -> None:
    """``n_images`` 500×375 JPEGs (quality 90) cut from the photos bundled with scikit-image."""
    rng = np.random.default_rng(0)
    photos = [
        np.asarray(Image.fromarray(getattr(skimage.data, name)()).convert("RGB")) for name in PHOTOS
    ]
    for i in range(n_images):
        photo = photos[i % len(photos)]
        scale = max(WIDTH / photo.shape[1], HEIGHT / photo.shape[0]) * rng.uniform(1.0, 1.5)
        big = Image.fromarray(photo).resize(
            (int(photo.shape[1] * scale) + 1, int(photo.shape[0] * scale) + 1)
        )
        left = int(rng.integers(0, big.width - WIDTH + 1))
        top = int(rng.integers(0, big.height - HEIGHT + 1))
        folder = root / "train" / f"c{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        big.crop((left, top, left + WIDTH, top + HEIGHT)).save(folder / f"{i:05d}.jpg", quality=90)


def baseline_noise(x: np.ndarray, spec: NoiseSpec, rng: np.random.Generator) -> np.ndarray:
    """float64 version of the noise model on ``x`` in [0, 1] (same draws as utils.noise)."""
    if spec.family == "gauss":
        y = x + rng.standard_normal(x.shape, dtype=np.float32).astype(np.float64) * (
            spec.level / 255.0
        )
    elif spec.family == "shot":
        y = rng.poisson(x * spec.level) / spec.level
    else:
        y = x + x * rng.standard_normal(x.shape, dtype=np.float32).astype(np.float64) * spec.level
    return np.clip(y, 0.0, 1.0)


def run_baseline(src: Path, dst: Path, spec: NoiseSpec, seed: int) -> int:
    rel_paths = list_source_images(src, ["train"])
    for rel in tqdm(rel_paths, desc="baseline", unit="img"):
        x = np.asarray(Image.open(src / rel).convert("RGB"), dtype=np.float64) / 255.0
        y = baseline_noise(x, spec, image_rng(seed, rel))
        out = dst / noisy_rel_path(rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((y * 255.0).astype(np.uint8)).save(out)
    return len(rel_paths)


def compare_trees(a: Path, b: Path) -> tuple[float, int, int, int]:
    """(fraction of identical values, max abs difference, bytes under a, bytes under b) over the
    PNGs."""
    n_same = n_total = max_diff = size_a = size_b = 0
    for path_a in sorted(a.rglob("*.png")):
        path_b = b / path_a.relative_to(a)
        pa = np.asarray(Image.open(path_a), dtype=np.int16)
        pb = np.asarray(Image.open(path_b), dtype=np.int16)
        n_same += int(np.count_nonzero(pa == pb))
        n_total += pa.size
        max_diff = max(max_diff, int(np.abs(pa - pb).max()))
        size_a, size_b = size_a + path_a.stat().st_size, size_b + path_b.stat().st_size
    return n_same / max(n_total, 1), max_diff, size_a, size_b


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished, reaped children (the
    workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@command
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200, help="number of 500x375 JPEGs")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--noise", default="gauss_100")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    spec = parse_noise_spec(args.noise)
    with tempfile.TemporaryDirectory(prefix="noise_bench_") as tmp:
        tmp = Path(tmp)
        make_jpegs(tmp / "src", args.n)
        t0, c0 = time.perf_counter(), cpu_seconds()
        run_baseline(tmp / "src", tmp / "baseline", spec, args.seed)
        t_base, c_base = time.perf_counter() - t0, cpu_seconds() - c0
        t0, c0 = time.perf_counter(), cpu_seconds()
        generate_noise(tmp / "src", tmp / "ours", spec, args.seed, args.workers, splits=["train"])
        t_ours, c_ours = time.perf_counter() - t0, cpu_seconds() - c0
        same, max_diff, size_base, size_ours = compare_trees(tmp / "baseline", tmp / "ours")
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "n_images": args.n,
        "noise": spec.tag,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "baseline_img_s": round(args.n / t_base, 1),
        "ours_img_s": round(args.n / t_ours, 1),
        "speedup": round(t_base / t_ours, 2),
        "cpu_ms_per_img_baseline": round(1000 * c_base / args.n, 1),
        "cpu_ms_per_img_ours": round(1000 * c_ours / args.n, 1),
        "cpu_ratio": round(c_base / c_ours, 2),
        "identical_fraction": same,
        "max_abs_diff": max_diff,
        "png_mb_baseline": round(size_base / 2**20, 1),
        "png_mb_ours": round(size_ours / 2**20, 1),
    }
    print(
        f"| {result['date']} | {spec.tag} | {args.n} | {args.workers} "
        f"| {result['baseline_img_s']} | {result['ours_img_s']} | **{result['speedup']}×** "
        f"| {result['cpu_ratio']}× "
        f"| {same:.6f} | {max_diff} | "
        f"{result['png_mb_baseline']} / {result['png_mb_ours']} | {result['load_avg_1min']} |"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    raise SystemExit(main())
