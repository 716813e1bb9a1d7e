"""Random fixed-size crops from full-size images, as a stream sample decoder.

Shards written with `hiresgan shards --crop full` (or `data.prepare=photos`) keep every image at
its own size; `RandomCrop` decodes one and cuts a `size` x `size` window at a position drawn from
the `rng` the stream hands it (seeded per (run seed, slot, batch, position)), so a resumed run
cuts the same windows. Families that derive more arrays from the crop (a low-resolution copy, a
mask) call `crop()` and add theirs.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from trainer.data.stream import IMAGE_EXTENSIONS


def decode_full(sample: dict, channels: int) -> np.ndarray:
    """A sample's image at its stored size as uint8 [C, H, W] (1 = L, 3 = RGB)."""
    ext = next((e for e in IMAGE_EXTENSIONS if e in sample), None)
    if ext is None:
        raise ValueError(f"sample {sample.get('__key__')} has no image (looked for {', '.join(IMAGE_EXTENSIONS)})")
    mode = "L" if channels == 1 else "RGB"
    with Image.open(io.BytesIO(sample[ext])) as img:
        array = np.asarray(img.convert(mode), dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def random_window(height: int, width: int, size: int, rng: np.random.Generator, *,
                  multiple: int = 1) -> tuple[int, int]:
    """(top, left) of a `size` window inside [height, width], both multiples of `multiple`."""
    if height < size or width < size:
        raise ValueError(f"image is {width}x{height}, smaller than the {size}x{size} crop; write shards with "
                         f"--resolution >= {size} or lower data.resolution")
    top = int(rng.integers(0, (height - size) // multiple + 1)) * multiple
    left = int(rng.integers(0, (width - size) // multiple + 1)) * multiple
    return top, left


class RandomCrop:
    """Decoder: {"image": uint8 [C, size, size]}, a random window of the full-size image."""

    def __init__(self, size: int, channels: int = 3):
        self.size, self.channels = size, channels

    def crop(self, sample: dict, rng: np.random.Generator) -> np.ndarray:
        image = decode_full(sample, self.channels)
        top, left = random_window(image.shape[1], image.shape[2], self.size, rng)
        return np.ascontiguousarray(image[:, top:top + self.size, left:left + self.size])

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        return {"image": self.crop(sample, rng)}
