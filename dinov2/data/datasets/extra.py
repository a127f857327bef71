"""Index ("extra") files of an ImageFolder-style root, written by ``process_metadata.py``.

A root holds ``train/<class>/**/<image>`` and ``val/<class>/**/<image>`` (any image extension,
any number of files) and optionally ``labels.txt`` with one ``class_id,class_name`` line per class.
For each split present, the index folder (default ``ROOT/extra``) gets, in the official DINOv2
naming:

- ``entries-<SPLIT>.npy``: structured array, one row per image, sorted by path: ``path`` (UTF-8
  bytes, relative to ``ROOT/<split>``) and ``class_index`` (``uint32``);
- ``class-ids-<SPLIT>.npy`` / ``class-names-<SPLIT>.npy``: the class folder names and readable
  names, the same list for every split so that class indices agree between train and val;
- ``index-<SPLIT>.json`` (written last): file count, SHA-256 of the sorted file list and the
  modification times of the folders (and of the scan), which make a stale index cheap to detect:
  only when a folder's mtime changed is the split listed again and its digest compared.

Class order: the order of ``labels.txt`` when present, else the sorted class folder names
(torchvision's ``ImageFolder`` convention).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from utils.atomic import atomic_open, atomic_write_text
from utils.image_io import is_image_file

SPLIT_DIRS = {"TRAIN": "train", "VAL": "val"}
LABELS_FILE = "labels.txt"
INDEX_VERSION = 1
RACY_WINDOW_NS = 2_000_000_000


class DatasetIndexError(RuntimeError, ValueError):
    """A missing, stale or invalid index; the one-line message names the command that fixes it.

    A ``ValueError`` too: an input the user fixes, so a command exits 2 on it (:mod:`utils.cli`)."""


def default_extra(root: str | os.PathLike) -> Path:
    return Path(root) / "extra"


def fix_command(root: str | os.PathLike, extra: str | os.PathLike | None) -> str:
    """The command that (re)writes the index of ``root``."""
    cmd = f"python process_metadata.py {root}"
    if extra is not None and Path(extra) != default_extra(root):
        cmd += f" --extra {extra}"
    return cmd


def read_labels(root: Path) -> list[tuple[str, str]] | None:
    """``(class_id, class_name)`` pairs of ``root/labels.txt`` in file order, or None without
    one."""
    path = root / LABELS_FILE
    if not path.is_file():
        return None
    pairs = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        class_id, sep, class_name = line.partition(
            ","
        )  # names may contain commas ("tench, Tinca tinca")
        if not sep or not class_id.strip():
            raise DatasetIndexError(
                f"{path}:{line_no}: expected 'class_id,class_name', got {line!r}"
            )
        pairs.append((class_id.strip(), class_name.strip()))
    return pairs


def scan_split(
    split_dir: Path, progress: bool = False
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Sorted ``(relative path, class folder)`` of the images of one split, and the mtimes of its
    folders."""
    items: list[tuple[str, str]] = []
    mtimes = {".": split_dir.stat().st_mtime_ns}
    entries = [e for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith(".")]
    classes = sorted(entries, key=lambda e: e.name)
    for entry in tqdm(
        classes, desc=f"index {split_dir}", unit="class", disable=not progress, leave=False
    ):
        for folder, dirs, files in os.walk(entry.path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel_dir = Path(folder).relative_to(split_dir).as_posix()
            mtimes[rel_dir] = os.stat(folder).st_mtime_ns
            items.extend((f"{rel_dir}/{name}", entry.name) for name in files if is_image_file(name))
    items.sort()
    return items, mtimes


def listing_digest(rel_paths: list[str]) -> str:
    h = hashlib.sha256()
    for rel in rel_paths:
        h.update(rel.encode("utf-8") + b"\n")
    return h.hexdigest()


def _class_list(root: Path, scans: dict[str, list[tuple[str, str]]]) -> tuple[list[str], list[str]]:
    folders = sorted({cls for items in scans.values() for _, cls in items})
    labels = read_labels(root)
    if labels is None:
        return folders, folders
    ids = [class_id for class_id, _ in labels]
    unknown = sorted(set(folders) - set(ids))
    if unknown:
        raise DatasetIndexError(
            f"class folder {unknown[0]!r} is not listed in {root / LABELS_FILE}; add a line for it"
        )
    return ids, [name for _, name in labels]


def build_index(root: str | os.PathLike, extra: str | os.PathLike | None = None) -> dict[str, int]:
    """Write the index files of every split present under ``root``; returns
    ``{SPLIT: n_images}``."""
    root = Path(root)
    extra = Path(extra) if extra is not None else default_extra(root)
    present = {split: root / d for split, d in SPLIT_DIRS.items() if (root / d).is_dir()}
    if not present:
        raise DatasetIndexError(
            f"{root} has no train/ or val/ folder (expected ROOT/train/<class>/<image>)"
        )
    scans, mtimes = {}, {}
    scanned_ns = time.time_ns()
    for split, split_dir in present.items():
        scans[split], mtimes[split] = scan_split(split_dir, progress=True)
    class_ids, class_names = _class_list(root, scans)
    class_index = {c: i for i, c in enumerate(class_ids)}
    extra.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, items in scans.items():
        # The record goes first and comes back last, so a killed run never leaves a record that
        # vouches for entries written by another run.
        (extra / f"index-{split}.json").unlink(missing_ok=True)
        paths = [rel.encode("utf-8") for rel, _ in items]
        entries = np.empty(
            len(items),
            dtype=[("path", f"S{max(map(len, paths), default=1)}"), ("class_index", "<u4")],
        )
        entries["path"] = paths
        entries["class_index"] = [class_index[cls] for _, cls in items]
        for name, array in (
            (f"entries-{split}.npy", entries),
            (f"class-ids-{split}.npy", np.array(class_ids, dtype=str)),
            (f"class-names-{split}.npy", np.array(class_names, dtype=str)),
        ):
            with atomic_open(extra / name) as f:
                np.save(f, array, allow_pickle=False)
        record = {
            "version": INDEX_VERSION,
            "n_files": len(items),
            "listing_sha256": listing_digest([rel for rel, _ in items]),
            "dir_mtimes_ns": mtimes[split],
            "scanned_ns": scanned_ns,
        }
        atomic_write_text(extra / f"index-{split}.json", json.dumps(record))
        counts[split] = len(items)
    return counts


def check_fresh(root: Path, extra: Path, split: str) -> None:
    """Raise :class:`DatasetIndexError` when the split's index is missing or its files changed
    since."""
    record_path = extra / f"index-{split}.json"
    fix = fix_command(root, extra)
    if not record_path.is_file():
        raise DatasetIndexError(
            f"no index for {root / SPLIT_DIRS[split]} ({record_path} missing); run: {fix}"
        )
    record = json.loads(record_path.read_text())
    if record.get("version") != INDEX_VERSION:
        raise DatasetIndexError(f"index {record_path} has an old format; run: {fix}")
    split_dir = root / SPLIT_DIRS[split]
    # Folder mtimes have a coarse clock (a few ms): one set within that window of the scan may hide
    # a later change, so such "racy" folders force the full comparison (as git does for its index).
    mtimes = record["dir_mtimes_ns"]
    try:
        same = all(os.stat(split_dir / d).st_mtime_ns == t for d, t in mtimes.items())
    except FileNotFoundError:
        same = False
    same = same and max(mtimes.values()) < record["scanned_ns"] - RACY_WINDOW_NS
    if same:
        return
    # A folder changed (or was copied without its mtimes): compare the actual file list.
    items, _ = scan_split(split_dir) if split_dir.is_dir() else ([], {})
    if listing_digest([rel for rel, _ in items]) != record["listing_sha256"]:
        raise DatasetIndexError(
            f"index of {split_dir} is stale ({len(items)} images now, "
            f"{record['n_files']} indexed); run: {fix}"
        )


def load_index(root: str | os.PathLike, extra: str | os.PathLike | None, split: str):
    """``(entries, class_ids, class_names)`` of one split, after checking the index is fresh."""
    root = Path(root)
    extra = Path(extra) if extra is not None else default_extra(root)
    check_fresh(root, extra, split)
    entries = np.load(extra / f"entries-{split}.npy", allow_pickle=False)
    class_ids = np.load(extra / f"class-ids-{split}.npy", allow_pickle=False)
    class_names = np.load(extra / f"class-names-{split}.npy", allow_pickle=False)
    return entries, class_ids, class_names
