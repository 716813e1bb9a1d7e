"""Reading and writing the images users upscale or score, with the documented conversions.

* grayscale (L, 1-bit): replicated to RGB for the model; an upscaled grayscale image is saved as
  grayscale again (the mean of the three output channels).
* RGBA / LA: the colour is upscaled by the model and the alpha channel by bicubic, then
  re-attached (scoring refuses see-through HR images: there is no ground truth under them).
* 16-bit (I;16, I): scaled to 8 bits (v * 255 / 65535, rounded); outputs are 8-bit.
* palette (P): expanded to RGB (or RGBA when it has transparency).
* unreadable or truncated files: `ImageReadError` naming the file; folder jobs go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class ImageReadError(ValueError):
    pass


@dataclass
class LoadedImage:
    rgb: np.ndarray  # uint8 [3, H, W]
    mode: str  # what to write back: "L", "RGB" or "RGBA"
    alpha: Optional[np.ndarray] = None  # uint8 [H, W] when the file had one
    notes: tuple[str, ...] = ()  # conversions applied, for the report


def read_image(path: Path) -> LoadedImage:
    try:
        with Image.open(path) as img:
            img.load()
            notes: list[str] = []
            if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                arr = np.asarray(img).astype(np.int64).clip(0, 65535)
                img = Image.fromarray(((arr * 255 + 32767) // 65535).astype(np.uint8), "L")
                notes.append("16-bit scaled to 8-bit")
            if img.mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            if img.mode in ("1", "L"):
                gray = np.asarray(img.convert("L"))
                notes.append("grayscale replicated to RGB")
                return LoadedImage(np.repeat(gray[None], 3, 0), "L", None, tuple(notes))
            if img.mode in ("LA", "La", "RGBA", "RGBa"):
                rgba = np.asarray(img.convert("RGBA"))
                mode = "RGBA"
                return LoadedImage(
                    np.ascontiguousarray(rgba[..., :3].transpose(2, 0, 1)),
                    mode,
                    np.ascontiguousarray(rgba[..., 3]),
                    tuple(notes + ["alpha upscaled by bicubic"]),
                )
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"'{path}': cannot read it as an image ({type(exc).__name__}: {exc})") from None
    return LoadedImage(np.ascontiguousarray(rgb.transpose(2, 0, 1)), "RGB", None, tuple(notes))


def write_image(path: Path, rgb: np.ndarray, *, mode: str = "RGB", alpha: Optional[np.ndarray] = None) -> None:
    """uint8 [3, H, W] -> file (format from the suffix), as `mode`; `alpha` [H, W] for RGBA."""
    hwc = rgb.transpose(1, 2, 0)
    if mode == "L":
        img = Image.fromarray(np.round(hwc.astype(np.float32).mean(2)).astype(np.uint8), "L")
    elif mode == "RGBA" and alpha is not None:
        img = Image.fromarray(np.concatenate([hwc, alpha[..., None]], 2), "RGBA")
    else:
        img = Image.fromarray(np.ascontiguousarray(hwc), "RGB")
    if img.mode == "RGBA" and Path(path).suffix.lower() in (".jpg", ".jpeg", ".bmp"):
        img = img.convert("RGB")  # these formats hold no alpha
    tmp = Path(path).with_name(f".{Path(path).name}.partial{Path(path).suffix}")
    img.save(tmp, **({"quality": 95} if Path(path).suffix.lower() in (".jpg", ".jpeg") else {}))
    tmp.replace(path)


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder (not recursive), sorted; hidden files skipped."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
