"""The second-order degradation of Real-ESRGAN (Wang et al. 2021), as a stream decoder step.

Real photos are degraded by a chain of unknown processes, so the LR copy is made by drawing such a
chain twice: blur (isotropic or anisotropic Gaussian, sometimes a sinc ringing filter) -> resize
(up, down or keep, area / bilinear / bicubic) -> noise (Gaussian, colour or gray, or Poisson) ->
JPEG; then a second round with milder ranges, the final resize to HR / scale and a sinc filter
and JPEG in random order. Every draw comes from the `rng` the stream seeds per sample, so a
resumed run degrades each sample exactly as before. Ranges follow the paper's settings.

Works on one image [C, H, W] in [0, 1] with torch on the CPU (inside loader workers).
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, angle: float) -> torch.Tensor:
    """An (an)isotropic Gaussian [size, size] rotated by `angle`, summing to 1."""
    r = torch.arange(size, dtype=torch.float64) - size // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * x + s * y, -s * x + c * y
    k = torch.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (k / k.sum()).float()


def sinc_kernel(size: int, cutoff: float) -> torch.Tensor:
    """A circular low-pass (2-D sinc, the jinc) with cutoff in radians per pixel: ringing artefacts."""
    r = torch.arange(size, dtype=torch.float64) - size // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    rad = torch.sqrt(x**2 + y**2)
    k = cutoff * torch.special.bessel_j1(cutoff * rad) / (2 * math.pi * rad.clamp_min(1e-12))
    k[rad == 0] = cutoff**2 / (4 * math.pi)
    return (k / k.sum()).float()


def _filter(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    c = img.shape[0]
    pad = kernel.shape[-1] // 2
    x = F.pad(img[None], (pad, pad, pad, pad), mode="reflect" if min(img.shape[1:]) > pad else "replicate")
    return F.conv2d(x, kernel.expand(c, 1, *kernel.shape), groups=c)[0]


def _blur(img: torch.Tensor, rng: np.random.Generator, sigma: tuple[float, float], sinc_p: float) -> torch.Tensor:
    size = int(rng.choice([7, 9, 11, 13, 15, 17, 19, 21]))
    if rng.random() < sinc_p:
        cutoff = rng.uniform(math.pi / 3, math.pi) if size < 13 else rng.uniform(math.pi / 5, math.pi)
        return _filter(img, sinc_kernel(size, cutoff))
    if rng.random() < 0.5:  # isotropic
        sx = sy = rng.uniform(*sigma)
    else:
        sx, sy = rng.uniform(*sigma), rng.uniform(*sigma)
    return _filter(img, gaussian_kernel(size, sx, sy, rng.uniform(-math.pi, math.pi)))


def _resize(img: torch.Tensor, size: tuple[int, int], rng: np.random.Generator) -> torch.Tensor:
    mode = str(rng.choice(["area", "bilinear", "bicubic"]))
    size = (max(size[0], 1), max(size[1], 1))
    if mode == "area":
        return F.interpolate(img[None], size=size, mode="area")[0]
    return F.interpolate(img[None], size=size, mode=mode, align_corners=False, antialias=True)[0]


def _random_resize(
    img: torch.Tensor,
    rng: np.random.Generator,
    up: tuple[float, float],
    down: tuple[float, float],
    probs: tuple[float, float, float],
) -> torch.Tensor:
    kind = rng.choice(3, p=probs)
    factor = rng.uniform(*up) if kind == 0 else rng.uniform(*down) if kind == 1 else 1.0
    h, w = img.shape[1:]
    return _resize(img, (int(h * factor), int(w * factor)), rng)


def _noise(
    img: torch.Tensor, rng: np.random.Generator, sigma: tuple[float, float], poisson: tuple[float, float]
) -> torch.Tensor:
    gray = rng.random() < 0.4
    shape = (1, *img.shape[1:]) if gray else img.shape
    if rng.random() < 0.5:
        noise = rng.normal(0.0, rng.uniform(*sigma) / 255.0, shape)
    else:
        base = img.mean(0, keepdim=True) if gray else img
        counts = rng.poisson(np.clip(base.numpy(), 0, 1) * 255.0)
        noise = (counts / 255.0 - base.numpy()) * rng.uniform(*poisson)
    return (img + torch.from_numpy(noise).float()).clamp(0, 1)


def _jpeg(img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    quality = int(rng.integers(30, 96))
    array = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    pil.save(buffer, "JPEG", quality=quality)
    out = np.asarray(Image.open(buffer), dtype=np.float32) / 255.0
    out = out[..., None] if out.ndim == 2 else out
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))


def second_order(hr: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 HR [C, H, W] -> uint8 LR [C, H/scale, W/scale] through the two-round chain."""
    c, h, w = hr.shape
    img = torch.from_numpy(hr.astype(np.float32) / 255.0)
    # Round 1
    img = _blur(img, rng, (0.2, 3.0), sinc_p=0.1)
    img = _random_resize(img, rng, (1.0, 1.5), (0.15, 1.0), (0.2, 0.7, 0.1))
    img = _noise(img, rng, (1.0, 30.0), (0.05, 3.0))
    img = _jpeg(img, rng)
    # Round 2 (milder), sometimes without the blur
    if rng.random() < 0.8:
        img = _blur(img, rng, (0.2, 1.5), sinc_p=0.1)
    img = _random_resize(img, rng, (1.0, 1.2), (0.3, 1.2), (0.3, 0.4, 0.3))
    img = _noise(img, rng, (1.0, 25.0), (0.05, 2.5))
    # Final: the target size, then a sinc filter and JPEG in either order
    sinc = (
        sinc_kernel(int(rng.choice([7, 9, 11, 13, 15, 17, 19, 21])), rng.uniform(math.pi / 3, math.pi))
        if rng.random() < 0.8
        else None
    )
    if rng.random() < 0.5:
        img = _resize(img, (h // scale, w // scale), rng)
        img = _filter(img, sinc) if sinc is not None else img
        img = _jpeg(img, rng)
    else:
        img = _jpeg(img, rng)
        img = _resize(img, (h // scale, w // scale), rng)
        img = _filter(img, sinc) if sinc is not None else img
    return (img.clamp(0, 1) * 255).round().byte().numpy()
