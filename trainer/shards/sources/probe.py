"""Header-only inspection of encoded images and of uint8 arrays, shared by the sources."""

from __future__ import annotations

import warnings
from typing import IO, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from .base import Item


def probe_image(key: str, fp: Union[str, IO[bytes]], meta: dict) -> Item:
    """Read the header of one image (no pixel decode). Raises ValueError with the reason."""
    try:
        with warnings.catch_warnings():
            # DecompressionBombWarning is an error here: a 90+ megapixel "image" is never a
            # training sample, and failing in the scan beats an out-of-memory worker later.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                width, height = img.size
                mode = img.mode
    except UnidentifiedImageError:
        raise ValueError("not a recognizable image (unknown format or corrupt header)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"too large to decode safely ({e})") from None
    except OSError as e:
        raise ValueError(f"{type(e).__name__}: {e}") from None
    if width < 1 or height < 1:
        raise ValueError(f"image is {width}x{height}")
    return Item(key=key, width=width, height=height, mode=mode, meta=meta)


def array_layout(shape: tuple[int, ...], where: str) -> str:
    """'NHW', 'NHWC' or 'NCHW' for a stack of images; ValueError naming `where` otherwise."""
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        raise ValueError(f"{where}: expected (N,H,W), (N,H,W,C) or (N,C,H,W), got shape {shape}")
    last, second = shape[3] in (1, 2, 3, 4), shape[1] in (1, 2, 3, 4)
    if last and second:
        raise ValueError(
            f"{where}: shape {shape} is ambiguous between NHWC and NCHW; "
            "transpose it to (N,H,W,C) with images larger than 4x4"
        )
    if last:
        return "NHWC"
    if second:
        return "NCHW"
    raise ValueError(f"{where}: shape {shape} has no channel axis of size 1-4 (first or last)")


# Channel count -> PIL mode of an HxWxC uint8 array.
CHANNEL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def to_hwc(images: np.ndarray, layout: str, index: int) -> np.ndarray:
    """The index-th image as HxW (gray) or HxWxC, contiguous, ready to pickle to a worker."""
    img = images[index]
    if layout == "NCHW":
        img = np.transpose(img, (1, 2, 0))
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return np.ascontiguousarray(img)


def array_items(images: np.ndarray, layout: str, labels, meta_for) -> list[Item]:
    """Items for a stack of uint8 images; all share one size and mode."""
    n = images.shape[0]
    if layout == "NCHW":
        c, h, w = images.shape[1:]
    elif layout == "NHWC":
        h, w, c = images.shape[1:]
    else:
        (h, w), c = images.shape[1:], 1
    mode = CHANNEL_MODES[c]
    return [
        Item(
            key=str(i),
            width=int(w),
            height=int(h),
            mode=mode,
            label=None if labels is None else int(labels[i]),
            meta=meta_for(i),
        )
        for i in range(n)
    ]


def check_labels(labels: np.ndarray, n: int, where: str) -> np.ndarray:
    """A 1-D array of n non-negative integers, else ValueError naming `where`."""
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{where}: expected {n} labels (shape ({n},)), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where}: labels must be integers, got dtype {labels.dtype}")
    if n and labels.min() < 0:
        raise ValueError(f"{where}: labels must be >= 0, found {int(labels.min())}")
    return labels.astype(np.int64)
