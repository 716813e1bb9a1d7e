"""Crop modes that turn one source image of any size into zero, one or many shard samples.

`--crop center|none` (encode.py) make one square sample per image, resized to `--resolution`.
The modes here never resize, so pixels stay exactly as in the source (what super-resolution and
inpainting train on):

* `full`: the whole image, any size and aspect; `--resolution` is the smallest side allowed (the
  crop size training will take from it, e.g. with `trainer.data.crops.RandomCrop`).
* `tiled`: every `--resolution` x `--resolution` tile of a grid with stride `--resolution`; when
  the size does not divide, one more row/column of tiles sits flush with the far edge (it
  overlaps its neighbour), so every pixel is in some tile.
* `random`: `--crops-per-image` crops at positions drawn from (`--crop-seed`, image index), so a
  rerun writes the same crops.

The crop boxes are planned from the scanned headers before anything is encoded: the expanded
list of items goes through the writer's ordinary (resumable, parallel) path.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .errors import problem
from .labels import Labels
from .sources import Item, Scan
from .sources.base import Payload

WHOLE_IMAGE_CROPS = ("full",)  # one sample per image, kept at its own size
MULTI_CROPS = ("tiled", "random")  # several fixed-size samples per image

Box = tuple[int, int, int, int]  # PIL's (left, top, right, bottom)


def tile_starts(length: int, size: int) -> list[int]:
    """Start offsets of tiles of `size` covering [0, length): stride `size`, last one flush."""
    starts = list(range(0, length - size + 1, size))
    if starts and starts[-1] + size < length:
        starts.append(length - size)
    return starts


def crop_boxes(item: Item, index: int, *, mode: str, size: int, count: int, seed: int) -> list[Box]:
    """The crop boxes of one image (empty when it is smaller than `size`)."""
    w, h = item.width, item.height
    if w < size or h < size:
        return []
    if mode == "tiled":
        return [(x, y, x + size, y + size) for y in tile_starts(h, size) for x in tile_starts(w, size)]
    rng = np.random.default_rng([seed, index, 0x4352])  # per image: adding images moves no other crop
    xs = rng.integers(0, w - size + 1, count)
    ys = rng.integers(0, h - size + 1, count)
    return [(int(x), int(y), int(x) + size, int(y) + size) for x, y in zip(xs, ys)]


def check_sizes(items: list[Item], size: int, mode: str) -> None:
    """Images too small for the crop size are an error listing them (never silently dropped)."""
    small = [f"{it.key}: {it.width}x{it.height}" for it in items if min(it.width, it.height) < size]
    if small:
        raise problem(
            f"images are smaller than --resolution {size} on a side, which --crop {mode} needs",
            small,
            "Remove or enlarge them, or pass a smaller --resolution",
        )


class CropPlan:
    """The expanded item list of a multi-crop mode and the payload of each crop."""

    def __init__(self, scan: Scan, labels: Labels, *, mode: str, size: int, count: int, seed: int):
        self.parents: list[int] = []
        self.boxes: list[Box] = []
        items: list[Item] = []
        for index, item in enumerate(scan.items):
            for box in crop_boxes(item, index, mode=mode, size=size, count=count, seed=seed):
                self.parents.append(index)
                self.boxes.append(box)
                items.append(
                    replace(
                        item,
                        key=f"{item.key}@{box[0]},{box[1]}",
                        width=size,
                        height=size,
                        meta={**item.meta, "crop": list(box)},
                    )
                )
        self.scan = replace(scan, items=items)
        self.labels = replace(labels, values=[labels.values[p] for p in self.parents])

    def payload(self, source, index: int) -> tuple[Payload, Box]:
        return source.payload(self.parents[index]), self.boxes[index]


class CroppedSource:
    """A source whose items are the crops of another's (what the writer iterates over)."""

    def __init__(self, source, plan: CropPlan):
        self.path, self._source, self._plan = source.path, source, plan

    def payload(self, index: int) -> tuple[Payload, Box]:
        return self._plan.payload(self._source, index)

    def close(self) -> None:
        self._source.close()
