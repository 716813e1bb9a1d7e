"""Low-resolution copies of high-resolution crops, made in the data stream (loader workers).

`bicubic_down` is the classic degradation of super-resolution benchmarks: PIL's bicubic
(a = -0.5, antialiased: the kernel is widened by the scale factor when shrinking), the same
filter as MATLAB's `imresize`, which papers use. The Real-ESRGAN second-order pipeline is in
`trainer.superres.realesrgan`. `PairDecoder` is the family's stream decoder: random HR crop, then
its degraded LR copy, both drawn from the `rng` the stream seeds per sample, so a resumed run
sees the same pairs.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from trainer.data.crops import RandomCrop

DEGRADATIONS = ("bicubic", "realesrgan")


def _pil(image: np.ndarray) -> Image.Image:
    """uint8 [C, H, W] -> PIL (L or RGB)."""
    return Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))


def _array(img: Image.Image) -> np.ndarray:
    array = np.asarray(img, dtype=np.uint8)
    return np.ascontiguousarray(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))


def bicubic_down(hr: np.ndarray, scale: int) -> np.ndarray:
    """uint8 [C, H, W] -> uint8 [C, H/scale, W/scale] (H, W must divide by scale)."""
    c, h, w = hr.shape
    if h % scale or w % scale:
        raise ValueError(f"HR image {w}x{h} does not divide by the scale {scale}; crop it first (modcrop)")
    return _array(_pil(hr).resize((w // scale, h // scale), Image.BICUBIC))


def bicubic_up(lr: np.ndarray, scale: int) -> np.ndarray:
    """uint8 [C, h, w] -> uint8 [C, h*scale, w*scale]: the bicubic baseline."""
    c, h, w = lr.shape
    return _array(_pil(lr).resize((w * scale, h * scale), Image.BICUBIC))


def modcrop(hr: np.ndarray, scale: int) -> np.ndarray:
    """Crop [C, H, W] to the largest H, W that divide by the scale (the benchmark convention)."""
    c, h, w = hr.shape
    return hr[:, : h - h % scale, : w - w % scale]


class PairDecoder:
    """Stream decoder: {"image": HR uint8 [C, size, size], "lr": uint8 [C, size/scale, size/scale]}."""

    def __init__(self, size: int, scale: int, *, channels: int = 3, degradation: str = "bicubic"):
        if degradation not in DEGRADATIONS:
            raise ValueError(f"degradation={degradation!r}; valid choices: {', '.join(DEGRADATIONS)}")
        if size % scale:
            raise ValueError(f"crop size {size} does not divide by the scale {scale}")
        self.crop, self.scale, self.degradation = RandomCrop(size, channels), scale, degradation

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        hr = self.crop.crop(sample, rng)
        if self.degradation == "bicubic":
            lr = bicubic_down(hr, self.scale)
        else:
            from trainer.superres.realesrgan import second_order

            lr = second_order(hr, self.scale, rng)
        return {"image": hr, "lr": lr}
