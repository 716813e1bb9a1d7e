"""Image helpers: tensors in [-1, 1] to uint8 pixels, PNG files and sample grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] float in [-1, 1] -> uint8 [N, H, W, C]."""
    pixels = (images.detach().float().cpu() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).numpy()


def _pil(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(pixels[:, :, 0], "L") if pixels.shape[2] == 1 else Image.fromarray(pixels, "RGB")


def save_png(pixels: np.ndarray, path: Path) -> None:
    _pil(pixels).save(path)


def save_grid(images: torch.Tensor, path: Path, *, rows: int) -> None:
    """Tile N images into `rows` rows (N must divide by rows) and save as one PNG."""
    pixels = to_uint8(images)
    n, h, w, c = pixels.shape
    cols = n // rows
    assert rows * cols == n, f"{n} images do not fill {rows} rows"
    grid = pixels.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    _pil(grid).save(tmp)
    tmp.replace(path)
