"""A mini retrieval set in the revisited Oxford/Paris format, from the photos of ``skimage.data``.

``python -m dinov2.eval.retrieval.mini_set ROOT`` (or :func:`build_mini_set`) writes::

    ROOT/mini/gnd_mini.pkl      # {"imlist": [...], "qimlist": [...], "gnd": [per-query dict]}
    ROOT/mini/jpg/<name>.jpg    # every database and query image (names without extension in the
    lists)

Structure (``n_photos`` = len(:data:`PHOTOS`) = 8 by default):

- **queries**: one per photo, ``q_<photo>``: the whole photo resized so that its long side is
  ``size`` pixels, with the query box ``bbx = [x1, y1, x2, y2]`` = the central half of the photo
  (relative box :data:`QUERY_BOX`, in pixels of the query image);
- **database**: :data:`N_DB_PER_PHOTO` views per photo, ``db_<photo>_<k>``: the crop
  :data:`DB_BOXES` ``[k]`` of the photo (relative coordinates), resized to long side ``size``, some
  flipped or darkened (augmented views); database images of different photos never match each other;
- **ground truth** of query ``q`` by the fraction of its box covered by a database crop of the same
  photo: ``easy`` ≥ :data:`EASY_MIN_COVER`, ``hard`` ≥ :data:`HARD_MIN_COVER`, ``junk`` below that
  (including no overlap). Every crop of a photo is in exactly one list of that photo's query, every
  query has at least one easy and one hard image, and other photos' crops are negatives.

So a feature equal to the source-photo id ranks every same-photo crop first and scores mAP 100 in
the Easy, Medium and Hard settings. The images are stored as JPEG (quality 95) like the originals.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from utils.cli import command
from utils.config import DefaultsHelpFormatter, default_value

log = logging.getLogger(__name__)

NAME = "mini"
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "camera",
    "brick",
)
QUERY_BOX = (0.25, 0.25, 0.75, 0.75)
# (x1, y1, x2, y2) relative crops and their augmentation: none | flip | dark
DB_BOXES = (
    ((0.1, 0.1, 0.9, 0.9), "none"),
    ((0.2, 0.15, 1.0, 0.85), "flip"),
    ((0.25, 0.2, 0.8, 0.8), "dark"),
    ((0.0, 0.0, 0.5, 0.5), "none"),
    ((0.5, 0.4, 1.0, 1.0), "flip"),
    ((0.0, 0.3, 0.6, 0.7), "dark"),
    ((0.0, 0.0, 0.3, 0.3), "none"),
    ((0.7, 0.7, 1.0, 1.0), "flip"),
)
N_DB_PER_PHOTO = len(DB_BOXES)
EASY_MIN_COVER = 0.5
HARD_MIN_COVER = 0.2
JPEG_QUALITY = 95


def box_cover(crop: tuple[float, ...], box: tuple[float, ...]) -> float:
    """Fraction of ``box``'s area inside ``crop`` (both ``(x1, y1, x2, y2)``)."""
    w = max(0.0, min(crop[2], box[2]) - max(crop[0], box[0]))
    h = max(0.0, min(crop[3], box[3]) - max(crop[1], box[1]))
    return w * h / ((box[2] - box[0]) * (box[3] - box[1]))


def label_by_cover(cover: float) -> str:
    """``easy`` / ``hard`` / ``junk`` by the covered fraction of the query box."""
    if cover >= EASY_MIN_COVER:
        return "easy"
    return "hard" if cover >= HARD_MIN_COVER else "junk"


def _photo(name: str) -> Image.Image:
    import skimage.data  # only to build the set: slow to import (it loads the photo registry)

    arr = np.asarray(getattr(skimage.data, name)())
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    img = Image.fromarray(arr[..., :3] if arr.ndim == 3 else arr)
    return img.convert("RGB")


def _resize_long_side(img: Image.Image, size: int) -> Image.Image:
    scale = size / max(img.size)
    return img.resize(
        (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC
    )


def _db_view(photo: Image.Image, box: tuple[float, ...], aug: str, size: int) -> Image.Image:
    w, h = photo.size
    crop = photo.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))
    crop = _resize_long_side(crop, size)
    if aug == "flip":
        crop = ImageOps.mirror(crop)
    elif aug == "dark":
        crop = Image.eval(crop, lambda v: int(v * 0.7))
    return crop


def mini_set_records(
    size: int = 128, photos: tuple[str, ...] = PHOTOS
) -> tuple[dict, dict[str, Image.Image]]:
    """The ``gnd`` dict (revisited format) and ``{name: image}`` of the mini set, in memory."""
    imlist, qimlist, gnd, images = [], [], [], {}
    for p, name in enumerate(photos):
        photo = _photo(name)
        lists: dict[str, list[int]] = {"easy": [], "hard": [], "junk": []}
        for k, (box, aug) in enumerate(DB_BOXES):
            db_name = f"db_{name}_{k}"
            images[db_name] = _db_view(photo, box, aug, size)
            lists[label_by_cover(box_cover(box, QUERY_BOX))].append(p * N_DB_PER_PHOTO + k)
            imlist.append(db_name)
        query = _resize_long_side(photo, size)
        qw, qh = query.size
        bbx = [QUERY_BOX[0] * qw, QUERY_BOX[1] * qh, QUERY_BOX[2] * qw, QUERY_BOX[3] * qh]
        images[f"q_{name}"] = query
        qimlist.append(f"q_{name}")
        gnd.append({"bbx": bbx, **lists})
    return {"imlist": imlist, "qimlist": qimlist, "gnd": gnd}, images


def build_mini_set(root: str | os.PathLike, size: int = 128, overwrite: bool = False) -> Path:
    """Write the mini set to ``root/mini`` (atomically, via a temp folder); returns that folder.

    An existing complete set is kept unless ``overwrite``.
    """
    out = Path(root) / NAME
    pkl = out / f"gnd_{NAME}.pkl"
    if pkl.is_file() and not overwrite:
        log.info("mini retrieval set already at %s", out)
        return out
    if out.exists() and not overwrite and any(out.iterdir()):
        raise FileExistsError(f"{out} exists without {pkl.name}; remove it or pass --overwrite")
    cfg, images = mini_set_records(size)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{NAME}."))
    try:
        (tmp / "jpg").mkdir()
        for name, img in images.items():
            img.save(tmp / "jpg" / f"{name}.jpg", quality=JPEG_QUALITY)
        with open(tmp / pkl.name, "wb") as f:
            pickle.dump(cfg, f)
        if out.exists():
            shutil.rmtree(out)  # only reached with overwrite=True
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "wrote mini retrieval set (%d db, %d queries) to %s",
        len(cfg["imlist"]),
        len(cfg["qimlist"]),
        out,
    )
    return out


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=DefaultsHelpFormatter
    )
    parser.add_argument("root", help="data root; the set is written to ROOT/mini")
    parser.add_argument(
        "--size",
        type=int,
        default=default_value("eval.retrieval.mini_size"),
        help="long side of every image in pixels",
    )
    parser.add_argument("--overwrite", action="store_true", help="rebuild an existing set")
    return parser


@command
def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = build_mini_set(args.root, size=args.size, overwrite=args.overwrite)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
