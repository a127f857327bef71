"""Clean ImageFolder tree → noisy copy: ``python -m utils.generate_noise``.

Each image ``SRC/<split>/<class>/<name>.<ext>`` becomes ``DST/<split>/<class>/<name>.png``
(lossless), with noise from :func:`utils.noise.add_noise_uint8`. Its random generator is seeded from
the global seed and its relative path only, so the output is byte-identical whatever the worker
count or order. Every file is written under a temporary name and renamed, so an interrupted run
leaves only finished files and a re-run resumes where it stopped. ``DST/.noise_manifest.json``
records the noise spec and seed (a different one is refused without ``--overwrite``) and, written
last, that the tree is complete.

Decoding rules (grayscale, palette, RGBA, 16-bit, CMYK → 8-bit RGB): :mod:`utils.image_io`.
Non-image files are ignored; an undecodable image is reported by path, gets no output, and makes the
command exit with status 1 at the end (``--skip-bad``: a warning, status 0).

Examples::

    python -m utils.generate_noise --src data/imagenet100 --dst data/imagenet100_gauss_100 --noise
    gauss_100 python -m utils.generate_noise --experiment configs/experiments/demo.yaml
    noise.sigma_255=50
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from utils.atomic import atomic_open, atomic_path, atomic_write_text
from utils.cli import command
from utils.config import add_experiment_args, default_value, load_experiment, save_resolved
from utils.embedded import ensure_clean_root
from utils.image_io import ImageDecodeError, is_image_file, write_png_rgb
from utils.load_noise import image_rng, noisy_pixels, noisy_rel_path  # noqa: F401 (public here too)
from utils.noise import NoiseSpec, parse_noise_spec
from utils.settings_record import first_change, stale_message

log = logging.getLogger(__name__)

MANIFEST_NAME = ".noise_manifest.json"
PARTIAL_SUFFIX = ".partial"
LABELS_FILE = "labels.txt"


class NoiseCLIError(ValueError):
    """Bad paths or arguments; the message (one line) says what to change."""


@dataclass
class NoiseRunResult:
    """What a run did; ``failed`` holds the relative paths of the files that could not be
    decoded."""

    n_written: int = 0
    n_skipped: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.n_written / self.seconds if self.seconds > 0 else 0.0


def noise_one_image(
    rel_path: str, src: str, dst: str, spec: str, seed: int
) -> tuple[str, str | None]:
    """Write the noisy PNG of one source image; returns ``(rel_path, None or why it failed)``.

    Runs in worker processes. Nothing is written for an image that fails to decode.
    """
    try:
        noisy = noisy_pixels(src, rel_path, spec, seed)
    except (ImageDecodeError, FileNotFoundError) as e:
        return rel_path, str(e)
    out = Path(dst, noisy_rel_path(rel_path))
    with atomic_open(out, "wb", suffix=PARTIAL_SUFFIX) as f:
        write_png_rgb(f, noisy)
    return rel_path, None


def list_source_images(src: Path, splits: Sequence[str]) -> list[str]:
    """Sorted relative POSIX paths of the image files under ``src/<split>/`` (other files
    ignored)."""
    rel_paths = []
    for split in splits:
        if not (src / split).is_dir():
            raise NoiseCLIError(
                f"split folder {src / split} not found; pass --splits with the splits you have"
            )
        for folder, dirs, files in os.walk(src / split):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            base = Path(folder).relative_to(src).as_posix()
            rel_paths.extend(f"{base}/{name}" for name in files if is_image_file(name))
    if not rel_paths:
        raise NoiseCLIError(f"no image files under {src} in splits {', '.join(splits)}")
    rel_paths.sort()
    outputs: dict[str, str] = {}
    for rel in rel_paths:
        other = outputs.setdefault(noisy_rel_path(rel), rel)
        if other != rel:
            clash = noisy_rel_path(rel)
            raise NoiseCLIError(
                f"{src / other} and {src / rel} would both be written as {clash}; rename one"
            )
    return rel_paths


def _existing_outputs(dst: Path) -> set[str]:
    """Relative paths of the files in ``dst``; leftovers of killed runs (``.*.partial``) are
    removed."""
    found = set()
    for folder, _, files in os.walk(dst):
        for name in files:
            path = Path(folder, name)
            if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
                path.unlink(missing_ok=True)
            else:
                found.add(path.relative_to(dst).as_posix())
    return found


def read_manifest(dst: Path) -> dict | None:
    path = dst / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NoiseCLIError(
            f"{path} is unreadable ({e}); pass --overwrite to regenerate {dst}"
        ) from e


def write_manifest(dst: Path, spec: NoiseSpec, seed: int, splits: Sequence[str], **extra) -> None:

    record = {"noise": spec.tag, "seed": int(seed), "splits": list(splits), **extra}
    atomic_write_text(dst / MANIFEST_NAME, json.dumps(record, indent=1) + "\n")


def check_paths(
    src: Path, dst: Path, spec: NoiseSpec, seed: int, overwrite: bool, new_place: str = "--dst"
) -> None:
    """Refuse a missing source, a destination inside the source, someone else's destination, or a
    destination of another noise (the manifest is this stage's settings record)."""
    if not src.is_dir():
        raise NoiseCLIError(f"--src {src} is not a folder")
    src_r, dst_r = src.resolve(), dst.resolve()
    if dst_r == src_r or src_r in dst_r.parents:
        raise NoiseCLIError(
            f"--dst {dst} is inside --src {src}; the source is read only, choose another --dst"
        )
    if dst_r in src_r.parents:
        raise NoiseCLIError(
            f"--src {src} is inside --dst {dst}; the source would be overwritten, "
            "choose another --dst"
        )
    if dst.exists() and not dst.is_dir():
        raise NoiseCLIError(f"--dst {dst} exists and is not a folder")
    if not dst.exists() or not any(dst.iterdir()):
        return
    manifest = read_manifest(dst)
    if overwrite:
        return
    if manifest is None:
        raise NoiseCLIError(
            f"--dst {dst} is not empty and has no {MANIFEST_NAME} (not written by generate_noise); "
            f"choose an empty folder or pass --overwrite"
        )

    old = {"noise.spec": manifest.get("noise"), "noise.seed": manifest.get("seed")}
    key = first_change(old, {"noise.spec": spec.tag, "noise.seed": seed})
    if key is not None:
        new = {"noise.spec": spec.tag, "noise.seed": seed}[key]
        raise NoiseCLIError(stale_message(dst, "the noisy tree", key, old[key], new, new_place))


def _copy_labels(src: Path, dst: Path, overwrite: bool) -> None:
    """Class names travel with the images, so the noisy root is indexable by
    ``process_metadata.py``."""
    if (src / LABELS_FILE).is_file() and (overwrite or not (dst / LABELS_FILE).exists()):
        with atomic_path(dst / LABELS_FILE, suffix=PARTIAL_SUFFIX) as tmp:
            shutil.copyfile(src / LABELS_FILE, tmp)


def _run_tasks(todo: list[str], worker, workers: int, fail_level: int) -> list[tuple[str, str]]:
    """Run ``worker`` on every relative path with a progress bar; returns ``(path, reason)``
    failures."""
    failures = []
    bar = tqdm(total=len(todo), unit="img", desc="noise", dynamic_ncols=True)
    workers = min(workers, len(todo))
    if workers <= 1:
        results, pool = map(worker, todo), None
    else:
        # fork: workers inherit the imported modules instead of re-importing torch in each of them.
        methods = mp.get_all_start_methods()
        pool = mp.get_context("fork" if "fork" in methods else "spawn").Pool(workers)
        chunk = max(1, min(16, len(todo) // (8 * workers)))
        results = pool.imap_unordered(worker, todo, chunksize=chunk)
    try:
        with logging_redirect_tqdm():
            for rel, reason in results:
                if reason is not None:
                    failures.append((rel, reason))
                    log.log(fail_level, "%s", reason)
                bar.update()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    return failures


def generate_noise(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    noise: str | NoiseSpec,
    seed: int = 42,
    workers: int = 1,
    splits: Sequence[str] = ("train", "val"),
    overwrite: bool = False,
    skip_bad: bool = False,
    new_place: str = "--dst",
) -> NoiseRunResult:
    """Write the noisy copy of ``src/<split>/**`` into ``dst``; resumable, deterministic (see module
    doc).

    ``new_place`` names the setting that chooses another destination in error messages."""
    src, dst, spec = Path(src), Path(dst), parse_noise_spec(noise)
    if seed < 0:
        raise NoiseCLIError(f"--seed must be >= 0, got {seed}")
    check_paths(src, dst, spec, seed, overwrite, new_place)
    rel_paths = list_source_images(src, splits)
    dst.mkdir(parents=True, exist_ok=True)
    existing = _existing_outputs(dst)
    if overwrite:
        existing = set()
    todo = [rel for rel in rel_paths if noisy_rel_path(rel) not in existing]
    result = NoiseRunResult(n_skipped=len(rel_paths) - len(todo))
    manifest = read_manifest(dst)
    if not todo and manifest is not None and manifest.get("complete"):
        return result
    write_manifest(dst, spec, seed, splits, complete=False)
    _copy_labels(src, dst, overwrite)
    for folder in sorted({os.path.dirname(rel) for rel in todo}):
        (dst / folder).mkdir(parents=True, exist_ok=True)
    worker = functools.partial(
        noise_one_image, src=str(src), dst=str(dst), spec=spec.tag, seed=seed
    )
    start = time.perf_counter()
    failures = _run_tasks(todo, worker, workers, logging.WARNING if skip_bad else logging.ERROR)
    result.seconds = time.perf_counter() - start
    result.failed = sorted(rel for rel, _ in failures)
    result.n_written = len(todo) - len(failures)
    # Written last: a tree whose manifest says complete has every decodable image.
    write_manifest(
        dst,
        spec,
        seed,
        splits,
        complete=True,
        n_images=len(rel_paths) - len(failures),
        failed=result.failed,
    )
    return result


def _resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill src/dst/noise/seed/workers/splits from ``--experiment`` (building an embedded dataset
    first)."""
    if args.experiment is None:
        if args.overrides:
            raise NoiseCLIError(f"key=value overrides {args.overrides} need --experiment FILE")
        missing = [f"--{k}" for k in ("src", "dst", "noise") if getattr(args, k) is None]
        if missing:
            raise NoiseCLIError(f"missing {', '.join(missing)} (or pass --experiment FILE)")
        # the defaults of an experiment (configs/defaults.yaml), as --help says
        args.seed = default_value("noise.seed") if args.seed is None else args.seed
        args.splits = args.splits or default_value("data.splits")
        args.workers = args.workers or default_value("noise.workers")
        args.new_place, args.at_load = "--dst", False
        return args
    mixed = [
        f"--{k}" for k in ("src", "dst", "noise", "seed", "splits") if getattr(args, k) is not None
    ]
    if mixed:
        raise NoiseCLIError(
            f"{', '.join(mixed)} cannot be used with --experiment; use key=value overrides"
        )

    cfg = load_experiment(args.experiment, args.overrides)
    args.src = str(ensure_clean_root(cfg.data.builder, cfg.data.clean_root))
    args.dst, args.noise, args.seed = cfg.data.noisy_root, cfg.noise.spec, int(cfg.noise.seed)
    args.splits, args.workers = list(cfg.data.splits), args.workers or int(cfg.noise.workers)
    args.save_config = functools.partial(save_resolved, cfg, cfg.data.noisy_root)
    args.new_place, args.at_load = "data.noisy_root", bool(cfg.noise.at_load)
    return args


def build_parser() -> argparse.ArgumentParser:

    p = argparse.ArgumentParser(
        prog="python -m utils.generate_noise", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--src", help="clean ImageFolder root (read only)")
    p.add_argument("--dst", help="noisy root to write (must not be inside --src)")
    p.add_argument(
        "--noise", metavar="SPEC", help="gauss_<sigma_255> | shot_<lambda> | speckle_<c>"
    )
    # Without --experiment, the defaults are those of configs/defaults.yaml (None here: with
    # --experiment these flags are refused or override the experiment's keys).
    p.add_argument(
        "--seed",
        type=int,
        help=f"global noise seed (default: noise.seed = {default_value('noise.seed')})",
    )
    p.add_argument(
        "--workers",
        type=int,
        help=f"worker processes (default: noise.workers = {default_value('noise.workers')})",
    )
    p.add_argument(
        "--splits",
        nargs="+",
        help="split folders to process (default: data.splits = "
        f"{' '.join(default_value('data.splits'))})",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="regenerate every file, whatever --dst holds"
    )
    p.add_argument(
        "--skip-bad", action="store_true", help="undecodable images are warnings, not a failure"
    )
    add_experiment_args(p)
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    args = _resolve_args(args)
    if args.at_load:  # the clean root exists now (an embedded dataset is built); nothing else
        print(
            f"generate_noise: noise.at_load is on; no noisy copy is written ({args.dst} is not "
            f"needed: the stages add {args.noise} to {args.src} as they read it)"
        )
        return 0
    result = generate_noise(
        args.src,
        args.dst,
        args.noise,
        args.seed,
        args.workers,
        args.splits,
        overwrite=args.overwrite,
        skip_bad=args.skip_bad,
        new_place=args.new_place,
    )
    if getattr(args, "save_config", None) is not None:
        args.save_config()
    if result.n_written == 0 and not result.failed:
        print(f"generate_noise: nothing to do, {args.dst} is complete ({result.n_skipped} images)")
        return 0
    print(
        f"generate_noise: {result.n_written} written, {result.n_skipped} skipped, "
        f"{len(result.failed)} failed, {result.images_per_s:.1f} images/s -> {args.dst}"
    )
    if result.failed:
        level = logging.WARNING if args.skip_bad else logging.ERROR
        n_failed, first = len(result.failed), result.failed[0]
        log.log(level, "%d undecodable image(s) under %s, first: %s", n_failed, args.src, first)
        return 0 if args.skip_bad else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
