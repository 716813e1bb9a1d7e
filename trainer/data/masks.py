"""Inpainting masks: generated per sample (free-form strokes plus boxes, as LaMa and co-mod-GAN
train with) or read from a folder of mask PNGs. Masks are uint8 [1, H, W], 255 = missing.

Generation draws everything from the `rng` the stream hands the decoder (seeded per run seed,
slot, batch and position), so a resumed run sees the same masks. The family's decoder
(`InpaintDecoder`) crops the image (`trainer.data.crops`) and adds the mask as a [1, H, W]
array, which the stream flips together with the image when data.xflip draws a flip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from trainer.data.crops import RandomCrop
from trainer.data.stream import IMAGE_EXTENSIONS, decode_image

MASK_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
TRIES = 20  # draws before settling for a single box when masks keep exceeding max_hole


def _stroke(draw: ImageDraw.ImageDraw, size: int, rng: np.random.Generator) -> None:
    """A brush stroke: a random walk of 3-9 segments with a smoothly turning heading, one width,
    rounded joints."""
    width = int(rng.integers(max(2, size // 40), max(3, size // 10) + 1))
    x, y = rng.uniform(0, size, 2)
    heading = rng.uniform(0, 2 * math.pi)
    points = [(x, y)]
    for _ in range(int(rng.integers(3, 10))):
        heading += rng.normal(0, 0.8)
        length = rng.uniform(0.05, 0.2) * size
        x = float(np.clip(x + length * math.cos(heading), 0, size - 1))
        y = float(np.clip(y + length * math.sin(heading), 0, size - 1))
        points.append((x, y))
    draw.line(points, fill=255, width=width)
    r = width / 2
    for px, py in points:
        draw.ellipse((px - r, py - r, px + r, py + r), fill=255)


def _box(draw: ImageDraw.ImageDraw, size: int, rng: np.random.Generator) -> None:
    w, h = (int(rng.uniform(0.1, 0.5) * size) for _ in range(2))
    left, top = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
    draw.rectangle((left, top, left + w - 1, top + h - 1), fill=255)


def generate_mask(size: int, rng: np.random.Generator, *, strokes: int = 4, boxes: int = 2,
                  max_hole: float = 0.5) -> np.ndarray:
    """uint8 [1, size, size] with 0..strokes strokes and 0..boxes boxes (at least one of either),
    covering more than nothing and at most `max_hole` of the image."""
    for _ in range(TRIES):
        canvas = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(canvas)
        n_strokes, n_boxes = int(rng.integers(0, strokes + 1)), int(rng.integers(0, boxes + 1))
        if n_strokes + n_boxes == 0:
            n_strokes, n_boxes = (1, 0) if strokes else (0, 1)
        for _ in range(n_strokes):
            _stroke(draw, size, rng)
        for _ in range(n_boxes):
            _box(draw, size, rng)
        mask = np.asarray(canvas)
        share = (mask > 127).mean()
        if 0 < share <= max_hole:
            return np.where(mask > 127, 255, 0).astype(np.uint8)[None]
    side = max(1, int(size * math.sqrt(max_hole) / 2))  # a centred box of a quarter of the allowed area
    mask = np.zeros((1, size, size), np.uint8)
    lo = (size - side) // 2
    mask[:, lo:lo + side, lo:lo + side] = 255
    return mask


def centre_box(size: int, box: int) -> np.ndarray:
    """uint8 [1, size, size] with a box x box hole in the middle (the quality gate's mask)."""
    mask = np.zeros((1, size, size), np.uint8)
    lo = (size - box) // 2
    mask[:, lo:lo + box, lo:lo + box] = 255
    return mask


def mask_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"config key 'inpaint.masks': '{folder}' is neither 'generate' nor a folder of mask PNGs")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in MASK_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise ValueError(f"config key 'inpaint.masks': '{folder}' holds no mask images ({', '.join(MASK_SUFFIXES)})")
    return files


def read_mask_file(path: Path, size: int) -> np.ndarray:
    """A mask PNG resized (nearest) to size x size, binarized at 128: uint8 [1, size, size]."""
    with Image.open(path) as img:
        gray = img.convert("L")
        if gray.size != (size, size):
            gray = gray.resize((size, size), Image.NEAREST)
        mask = np.asarray(gray) > 127
    if mask.all() or not mask.any():
        raise ValueError(f"mask '{path}' is all {'white' if mask.all() else 'black'}: it must mark some, "
                         "not all, pixels as missing")
    return np.where(mask, 255, 0).astype(np.uint8)[None]


@dataclass(frozen=True)
class InpaintDecoder:
    """raw sample -> {"image": uint8 [C, res, res] (a random crop, or the image resized when it is
    smaller), "mask": uint8 [1, res, res]}. `masks` is "generate" or a tuple of mask files. Paired
    shards (`<key>.b.png` targets, no plain image) work too: their targets are the images."""

    resolution: int
    channels: int
    masks: str | tuple[str, ...] = "generate"
    strokes: int = 4
    boxes: int = 2
    max_hole: float = 0.5

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        if not any(ext in sample for ext in IMAGE_EXTENSIONS):  # paired shards: fill in the target
            sample = {**{ext: sample[f"b.{ext}"] for ext in IMAGE_EXTENSIONS if f"b.{ext}" in sample},
                      "__key__": sample.get("__key__"), "__url__": sample.get("__url__")}
        try:
            image = RandomCrop(self.resolution, self.channels).crop(sample, rng)
        except ValueError:  # stored smaller than the crop: use the whole image, resized
            image = decode_image(sample, self.resolution, self.channels)
        if self.masks == "generate":
            mask = generate_mask(self.resolution, rng, strokes=self.strokes, boxes=self.boxes,
                                 max_hole=self.max_hole)
        else:
            mask = read_mask_file(Path(self.masks[int(rng.integers(len(self.masks)))]), self.resolution)
        return {"image": image, "mask": mask}
