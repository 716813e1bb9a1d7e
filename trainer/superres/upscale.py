"""Upscaling whole images in overlapping tiles, so memory stays flat whatever the input size.

The LR image is cut into `tile` x `tile` cores; each core is run through G with up to `overlap`
pixels of its neighbours around it as context, and only the core's part of the output is kept.
Every output pixel so comes from a run that saw at least `overlap` LR pixels around it (or the
true image border), which hides the seams; peak memory is that of one (tile + 2 overlap)^2 run.
"""

from __future__ import annotations

import numpy as np
import torch

from trainer.models.esrgan import MIN_INPUT


def to_model(image: np.ndarray, device) -> torch.Tensor:
    """uint8 [C, H, W] -> float [1, C, H, W] in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).float().div(127.5).sub(1)[None]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float [1, C, H, W] in [-1, 1] -> uint8 [C, H, W] (rounded, clamped)."""
    return ((x[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


@torch.no_grad()
def upscale_tensor(G, lr: torch.Tensor, *, scale: int, tile: int = 128, overlap: int = 16) -> torch.Tensor:
    """[1, C, h, w] in [-1, 1] -> [1, C, h*scale, w*scale] in [-1, 1], tile by tile."""
    _, c, h, w = lr.shape
    if min(h, w) < MIN_INPUT:
        raise ValueError(f"the input is {w}x{h}; the model needs at least {MIN_INPUT} pixels on a side")
    out = torch.empty((1, c, h * scale, w * scale), dtype=torch.float32, device=lr.device)
    dtype = next(G.parameters()).dtype
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0, px0 = max(y0 - overlap, 0), max(x0 - overlap, 0)
            py1, px1 = min(y1 + overlap, h), min(x1 + overlap, w)
            sr = G(lr[:, :, py0:py1, px0:px1].to(dtype)).float()  # [1, C, (py1-py0)*s, (px1-px0)*s]
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = sr[
                :, :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale
            ]
    return out


def upscale_image(G, lr: np.ndarray, *, scale: int, tile: int = 128, overlap: int = 16, device="cpu") -> np.ndarray:
    """uint8 [C, h, w] -> uint8 [C, h*scale, w*scale]."""
    return to_uint8(upscale_tensor(G, to_model(lr, device), scale=scale, tile=tile, overlap=overlap))
