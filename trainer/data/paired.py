"""Paired samples for image-to-image translation (pix2pix): an input and a target per sample.

Two sources, one decoder (`PairedDecoder`, a `trainer.data.stream.SampleDecoder`):
* paired shards: the input as member `<key>.a.png` (or .jpg/.webp) and the target as
  `<key>.b.png`, written by `hiresgan shards INPUTS OUT --paired TARGETS` or by
  `data.prepare=edges2digits`;
* any image shards plus a named transform that derives the input from the image on the fly:
  `edges` (Canny), `gray` (luminance) or `downscale` (box-filtered down by a factor, then bicubic
  back up, so input and target keep one size).

The decoder returns the target as "image" and the input as "input" (uint8 [C_in, H, W]); the
stream stacks "input" into `Batch.extras` and flips it with the target when data.xflip draws a
flip. The transforms are plain functions so samplers and quality gates derive inputs the same way.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from trainer.data.stream import IMAGE_EXTENSIONS, decode_image, decode_label

TRANSFORMS = ("none", "edges", "gray", "downscale")
PAIR_SIDES = ("a", "b")  # a = input, b = target


def luminance(image: np.ndarray) -> np.ndarray:
    """uint8 [C, H, W] (C = 1 or 3) -> uint8 [H, W], ITU-R 601 luma as PIL computes it."""
    if image.shape[0] == 1:
        return image[0]
    return np.asarray(Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)), "RGB").convert("L"))


def canny_edges(gray: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """uint8 [H, W] -> uint8 [H, W] edge map, 255 on edges (white on black):
    `skimage.feature.canny(image / 255, sigma)` with skimage's default thresholds."""
    from skimage.feature import canny

    return (canny(gray.astype(np.float64) / 255.0, sigma=sigma) * 255).astype(np.uint8)


def downscaled(image: np.ndarray, factor: int) -> np.ndarray:
    """uint8 [C, H, W] -> the same size after a box-filter downscale by `factor` and bicubic back up
    (a super-resolution-style input at the target's size, so the U-Net's sides match)."""
    c, h, w = image.shape
    out = []
    for channel in image:
        small = Image.fromarray(channel, "L").resize((max(1, w // factor), max(1, h // factor)), Image.BOX)
        out.append(np.asarray(small.resize((w, h), Image.BICUBIC)))
    return np.stack(out)


def derive_input(image: np.ndarray, transform: str, *, sigma: float = 1.0, factor: int = 4) -> np.ndarray:
    """The input a named transform derives from a target image uint8 [C, H, W]."""
    if transform == "edges":
        return canny_edges(luminance(image), sigma)[None]
    if transform == "gray":
        return luminance(image)[None]
    if transform == "downscale":
        return downscaled(image, factor)
    raise ValueError(f"paired transform {transform!r}; valid choices: {', '.join(TRANSFORMS[1:])}")


def input_channels_of(transform: str, channels: int) -> int:
    """Channels of the derived input: 1 for edges and gray, the image's for downscale."""
    return channels if transform == "downscale" else 1


def _side(sample: dict, side: str) -> dict:
    """The sub-sample of one side ('a' or 'b') that decode_image reads: {ext: bytes, key, url}."""
    found = {ext: sample[f"{side}.{ext}"] for ext in IMAGE_EXTENSIONS if f"{side}.{ext}" in sample}
    if not found:
        have = sorted(k for k in sample if not k.startswith("__"))
        raise ValueError(f"sample {sample.get('__key__')} in {sample.get('__url__')} has no '{side}.png' "
                         f"({'input' if side == 'a' else 'target'} of the pair; members: {have}); "
                         "write paired shards with `hiresgan shards INPUTS OUT --paired TARGETS`")
    return {**found, "__key__": sample.get("__key__"), "__url__": sample.get("__url__")}


def mode_channels(mode: str) -> int:
    """Colour channels of a PIL mode, alpha not counted: 1 for gray (1, L, LA, I, I;16), else 3."""
    return 1 if mode in ("1", "L", "LA", "I", "I;16", "F") else 3


def _stored_channels(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as img:
        return mode_channels(img.mode)


@dataclass(frozen=True)
class PairedDecoder:
    """raw shard sample -> {"image": target, "input": input, "label"?}, both uint8 at `resolution`.

    transform "none" reads the pair from the shard (`a.*`, `b.*`); the others derive the input
    from the sample's one image. An input whose stored channel count differs from
    `input_channels` (an RGB edge map for a 1-channel model) is refused, naming the sample."""

    resolution: int
    channels: int  # target channels
    input_channels: int
    transform: str = "none"
    sigma: float = 1.0  # Canny's Gaussian sigma (transform edges)
    factor: int = 4  # downscale factor (transform downscale)
    labeled: bool = False
    num_classes: int = 0

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        if self.transform == "none":
            a, b = _side(sample, "a"), _side(sample, "b")
            ext = next(e for e in IMAGE_EXTENSIONS if e in a)
            stored = _stored_channels(a[ext])
            if stored != self.input_channels:
                raise ValueError(f"sample {sample.get('__key__')} in {sample.get('__url__')}: input 'a.{ext}' has "
                                 f"{stored} channel(s) but the model reads {self.input_channels} "
                                 "(pix2pix.input_channels); rewrite the shards or change that key")
            image = decode_image(b, self.resolution, self.channels)
            source = decode_image(a, self.resolution, self.input_channels)
        else:
            image = decode_image(sample, self.resolution, self.channels)
            source = derive_input(image, self.transform, sigma=self.sigma, factor=self.factor)
        out = {"image": image, "input": np.ascontiguousarray(source)}
        if self.labeled:
            out["label"] = decode_label(sample, self.num_classes)
        return out
