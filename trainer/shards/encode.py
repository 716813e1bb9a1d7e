"""Worker side: payload -> decoded image -> 8-bit, alpha-free -> crop -> resize -> encoded bytes.

Everything here is a pure function of (payload, settings) so that any number of worker
processes produce the same bytes. Errors come back as strings, not exceptions, so the writer can
collect several before it stops.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from .sources.base import Payload

# Fixed so PNG bytes never depend on Pillow's defaults changing; 6 is zlib's own default.
PNG_COMPRESS_LEVEL = 6
# Extension written in the tar for each --format.
EXTENSIONS = {"png": "png", "jpg": "jpg", "webp": "webp"}
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N"})
SUPPORTED_MODES = GRAY_MODES | {"P", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"}


@dataclass(frozen=True)
class EncodeSettings:
    resolution: int
    crop: str  # "center" | "none" | "full" | "tiled" | "random" (the last three never resize: crops.py)
    fmt: str  # "png" | "jpg" | "webp"
    quality: int | None  # jpg 1-100; webp 1-99 lossy, 100 lossless; png None
    channels: int  # 1 or 3


def _open(payload: Payload) -> Image.Image:
    if isinstance(payload, np.ndarray):
        return Image.fromarray(payload)
    img = Image.open(payload if isinstance(payload, str) else io.BytesIO(payload))
    img.load()  # decode now so truncated files fail here, with their name attached
    # Camera photos store "rotate me" as an EXIF tag; train on what a viewer shows.
    return ImageOps.exif_transpose(img)


def _to_8bit(img: Image.Image) -> Image.Image:
    """Gray or RGB(A) with 8 bits per channel; 16-bit gray is scaled, not clipped."""
    if img.mode.startswith("I"):
        arr = np.asarray(img).astype(np.int64).clip(0, 65535)
        return Image.fromarray(((arr * 255 + 32767) // 65535).astype(np.uint8), "L")
    if img.mode == "1":
        return img.convert("L")
    if img.mode in ("P", "PA") or "transparency" in img.info:
        # Palette entries or a transparency key may carry alpha: expand so it can be checked.
        return img.convert("RGBA" if img.mode not in ("L", "La", "LA") else "LA")
    if img.mode in ("La", "RGBa"):
        return img.convert(img.mode.upper())
    if img.mode not in ("L", "LA", "RGB", "RGBA"):
        return img.convert("RGB")
    return img


def _drop_alpha(img: Image.Image) -> Image.Image:
    """Remove an alpha channel that is fully opaque; ValueError if any pixel is see-through.

    Shards hold no alpha. Dropping real transparency would expose whatever colour sits under
    transparent pixels (often garbage), so it is refused rather than guessed at.
    """
    if img.mode not in ("LA", "RGBA"):
        return img
    lo, _ = img.getchannel("A").getextrema()
    if lo < 255:
        raise ValueError(
            "has transparent pixels (alpha < 255); flatten it onto a background first, e.g. "
            "Image.alpha_composite(Image.new('RGBA', im.size, 'white'), im).convert('RGB')"
        )
    return img.convert(img.mode[:-1] if img.mode == "LA" else "RGB")


def _square(img: Image.Image, crop: str) -> Image.Image:
    w, h = img.size
    if w == h:
        return img
    if crop == "none":
        raise ValueError(f"is {w}x{h}, not square; use --crop center")
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s))


def _encode(img: Image.Image, s: EncodeSettings) -> bytes:
    buf = io.BytesIO()
    if s.fmt == "png":
        img.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    elif s.fmt == "jpg":
        # 4:4:4 keeps full colour resolution; GAN training data should not lose it to chroma
        # subsampling. Baseline, non-optimized: one fixed byte stream for given pixels.
        img.save(buf, "JPEG", quality=s.quality, subsampling=0, optimize=False, progressive=False)
    elif s.fmt == "webp":
        if s.quality == 100:
            img.save(buf, "WEBP", lossless=True, quality=100, method=4, exact=True)
        else:
            img.save(buf, "WEBP", quality=s.quality, method=4)
    else:  # pragma: no cover - validated by the writer
        raise AssertionError(s.fmt)
    return buf.getvalue()


def _crop_box(img: Image.Image, box) -> Image.Image:
    """A planned crop (tiled/random modes); the plan used the header size, so check it still fits
    (an EXIF rotation swaps width and height)."""
    if box[2] > img.size[0] or box[3] > img.size[1]:
        raise ValueError(f"is {img.size[0]}x{img.size[1]} after EXIF orientation; crop {box} does not fit")
    return img.crop(box)


def process(payload: Payload | tuple, s: EncodeSettings) -> bytes:
    """Encoded bytes of one sample's image; ValueError with a reason on bad input. A
    (payload, box) pair is one planned crop of the multi-crop modes (crops.py)."""
    box = None
    if isinstance(payload, tuple):
        payload, box = payload
    try:
        img = _open(payload)
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"cannot decode ({type(e).__name__}: {e})") from None
    with img:
        img = _drop_alpha(_to_8bit(img))
        img = img.convert("L") if s.channels == 1 else img.convert("RGB")
        if box is not None:
            return _encode(_crop_box(img, box), s)
        if s.crop == "full":
            if min(img.size) < s.resolution:
                raise ValueError(
                    f"is {img.size[0]}x{img.size[1]}, smaller than --resolution {s.resolution} "
                    "on a side (after EXIF orientation)"
                )
            return _encode(img, s)
        img = _square(img, s.crop)
        if img.size != (s.resolution, s.resolution):
            # Lanczos both ways: best for downscaling, and for tiny sources (8x8 digits) it
            # gives smoother upscales than bicubic.
            img = img.resize((s.resolution, s.resolution), Image.LANCZOS)
        return _encode(img, s)


def process_chunk(chunk: list[tuple[int, Payload]], s: EncodeSettings) -> list[tuple[int, bytes | None, str | None]]:
    """(index, bytes, None) or (index, None, reason) per task; runs in a worker process."""
    out = []
    for index, payload in chunk:
        try:
            out.append((index, process(payload, s), None))
        except ValueError as e:
            out.append((index, None, str(e)))
    return out
