"""Embedded real photographs: the photos bundled inside scikit-image's wheel, as training shards
plus a held-out validation folder (`data.prepare=photos`).

Only photos that ship in the wheel are used (others need a download). They are first written as
PNG files to `<out>/source/` and then go through `hiresgan shards` like any user folder
(tiles at their own pixel size, for random crops at training time, `trainer.data.crops`). The
validation photos (`HELD_OUT`) go to `<out>/val/` only, never into the
training folder or shards; photos of other packages (scikit-learn's sample images,
matplotlib's sample data, PyWavelets) are never written at all, so users can evaluate on them.

The training shards hold the photos as `TILE` x `TILE` tiles (`--crop tiled`: unresized windows
covering every pixel) rather than whole: a random 64 px crop then costs the decode of a 256 px
PNG (a few ms) instead of a whole 1411 px retina (~170 ms), which would starve a 2-core trainer.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

# Held out of training: scored by the super-resolution (and other image-to-image) validations.
HELD_OUT = ("astronaut", "coffee", "rocket", "camera")
# Trained on: the other bundled photos (the grayscale ones are stored as they are; the shard
# writer replicates them to RGB because the set holds colour photos).
TRAIN = ("chelsea", "hubble_deep_field", "immunohistochemistry", "retina", "motorcycle_left",
         "motorcycle_right", "brick", "grass", "gravel", "moon")
SOURCE, VAL, TRAIN_SHARDS = "source", "val", "train"  # sub-folders of the prepared folder
TILE = 256  # training tiles; every bundled photo is at least 300 px on a side, so each gives >= 1


def load_photo(name: str) -> np.ndarray:
    """One bundled photo as uint8 [H, W] or [H, W, 3] (no download: only wheel-bundled names)."""
    from skimage import data  # scikit-image ships these files inside the package

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    if name not in TRAIN + HELD_OUT:
        raise ValueError(f"'{name}' is not one of the embedded photos: {', '.join(TRAIN + HELD_OUT)}")
    return np.asarray(getattr(data, name)(), dtype=np.uint8)


def _write_pngs(names: tuple[str, ...], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(load_photo(name)).save(folder / f"{name}.png", compress_level=6)


def write_photo_shards(out_dir: Path, *, tile: int = TILE) -> Path:
    """Write `<out_dir>/{source,val,train}`; return the training manifest path.

    Written into a temporary sibling folder renamed into place at the end, so an interrupted run
    never leaves a set that looks complete."""
    from trainer.shards import write_shards

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    _write_pngs(TRAIN, tmp / SOURCE)
    _write_pngs(HELD_OUT, tmp / VAL)
    write_shards(tmp / SOURCE, tmp / TRAIN_SHARDS, resolution=tile, crop="tiled", channels=3, labels="none")
    (tmp / "photos.json").write_text(json.dumps({"train": list(TRAIN), "held_out": list(HELD_OUT)}, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir / TRAIN_SHARDS / "manifest.json"


def photos_root(urls_item: str) -> Path:
    """The prepared folder from a `data.urls` item naming it, its `train` shards or a file in them."""
    path = Path(urls_item)
    if path.suffix in (".tar", ".json"):
        path = path.parent
    return path.parent if path.name == TRAIN_SHARDS else path


def ensure_photo_shards(root: Path) -> Path:
    """Write the photo shards unless a complete set is there; return the training manifest path."""
    root = Path(root)
    manifest = root / TRAIN_SHARDS / "manifest.json"
    if manifest.is_file() and (root / "photos.json").is_file():
        names = [entry["name"] for entry in json.loads(manifest.read_text())["shards"]]
        if all((manifest.parent / name).is_file() for name in names):
            return manifest
    return write_photo_shards(root)


def validation_folder(root: Path) -> Path:
    return Path(root) / VAL
