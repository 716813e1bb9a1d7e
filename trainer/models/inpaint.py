"""Inpainting: fill the missing pixels of an image, keeping the known ones exactly.

G is pix2pix's U-Net (`trainer.models.pix2pix.UNet`) reading the masked image (missing pixels set
to 0, mid-gray) and the mask; its output is composited, so every known pixel of the result is the
input's own. With `prefill` (the default) the hole is first filled by a classical smooth fill
(`smooth_fill`: masked averages down an image pyramid, blended and relaxed back up towards a
harmonic or biharmonic fill) that G also reads, and G's
output is a correction on top of it: a small CPU training budget then starts from a smooth fill
rather than from gray, and the network spends it on what the smooth fill lacks.

D is the pix2pix PatchGAN judging the composite beside the mask (it learns where to look),
trained with R1 by the recipe (`trainer.recipes.inpaint`).

Masks are float [N, 1, H, W] with 1 = missing (white in mask PNGs), 0 = known.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.common import records_init_kwargs
from trainer.models.pix2pix import UNet, default_depth

# Jacobi steps of the smooth prefill per pyramid level: many on the cheap coarse levels (where
# a large hole is mostly filled), few on the finest.
COARSE_STEPS, FINE_STEPS = 32, 4
# The biharmonic fill's damped Jacobi steps per level (level 0 is full size). Its smoothing is
# much slower than the harmonic one's, so it runs where steps are cheap: 64 at 1/4 size, 256 on
# every coarser level; 1/2 size takes none and full size the harmonic fill's FINE_STEPS, which
# only settle the finest detail. Chosen on the training photos' centre crops with a 96x96 hole
# (gap to scikit-image's converged biharmonic fill where it is the better fill, e.g. retina:
# 7.4 dB harmonic, 0.9 dB this schedule, 0.05 dB with 4x the steps at every level; cost for 16
# images at 256 px on one thread: ~0.45 s against the harmonic fill's ~0.3 s).
BIHARMONIC_STEPS = {1: 0, 2: 64}
BIHARMONIC_COARSE_STEPS = 256
# Damping of the biharmonic Jacobi step: the 13-point stencil's diagonal is 20 and its largest
# eigenvalue 64, so plain Jacobi diverges; omega < 20 * 2 / 64 = 0.625 converges.
BIHARMONIC_OMEGA = 0.5
PREFILL_EQUATIONS = ("harmonic", "biharmonic")


def composite(image: torch.Tensor, filled: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Known pixels from `image`, missing ones (mask 1) from `filled`. A select, not a blend: with a
    binary mask the known pixels come out bit-exact."""
    return torch.where(mask > 0.5, filled, image)


def _laplacian(u: torch.Tensor) -> torch.Tensor:
    """The 5-point Laplacian, edges replicated (a zero normal derivative at the image border)."""
    p = F.pad(u, (1, 1, 1, 1), mode="replicate")
    return p[:, :, :-2, 1:-1] + p[:, :, 2:, 1:-1] + p[:, :, 1:-1, :-2] + p[:, :, 1:-1, 2:] - 4 * u


def smooth_fill(image: torch.Tensor, mask: torch.Tensor, levels: int, equation: str = "harmonic") -> torch.Tensor:
    """A smooth fill of the missing pixels (mask 1), multigrid style: average the known
    pixels down `levels` 2x2 means (each normalized by its share of known pixels; coarsest cells
    without any take the mean of all known pixels), then on the way back up blend each level's
    own average with the upsampled coarser fill and relax it, known pixels held.

    `harmonic`: Jacobi steps of the Laplace equation (each pixel towards the mean of its 4
    neighbours), COARSE_STEPS on every level but the finest, FINE_STEPS there. `biharmonic`:
    damped Jacobi steps of the biharmonic equation (the 13-point stencil, the Laplacian applied
    twice), per BIHARMONIC_STEPS, then FINE_STEPS harmonic steps at full size. Biharmonic fills
    continue the slope at the hole's edge as well as the value, the classical fill (scikit-image's
    `inpaint_biharmonic`) that the inpainting gate compares against; harmonic fills meet the edge
    with a kink. Counts per level, not per pixel size, keep traced graphs (ONNX) equal to eager
    runs at every size. [N, C, H, W] -> [N, C, H, W]; no parameters."""
    if equation not in PREFILL_EQUATIONS:
        raise ValueError(f"prefill equation {equation!r}; valid choices: {', '.join(PREFILL_EQUATIONS)}")
    known = 1 - mask
    colors, weights = [image * known], [known]
    for _ in range(levels):
        colors.append(F.avg_pool2d(colors[-1], 2))
        weights.append(F.avg_pool2d(weights[-1], 2))
    mean = colors[0].sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp_min(1)  # [N, C, 1, 1]
    out = torch.where(weights[-1] > 0, colors[-1] / weights[-1].clamp_min(1e-6), mean)
    for level in reversed(range(levels)):
        color, weight = colors[level], weights[level]
        held = weight * (color / weight.clamp_min(1e-6))  # a cell's known share keeps its own average
        out = held + (1 - weight) * F.interpolate(out, size=color.shape[2:], mode="bilinear", align_corners=False)
        if equation == "biharmonic" and level > 0:
            for _ in range(BIHARMONIC_STEPS.get(level, BIHARMONIC_COARSE_STEPS)):
                out = held + (1 - weight) * (out - BIHARMONIC_OMEGA / 20 * _laplacian(_laplacian(out)))
            continue
        for _ in range(FINE_STEPS if level == 0 else COARSE_STEPS):
            # The neighbours' mean written out, not out + _laplacian(out) / 4: equal in exact
            # arithmetic, but harmonic exports trained before the biharmonic option keep their bits.
            p = F.pad(out, (1, 1, 1, 1), mode="replicate")
            neighbours = (p[:, :, :-2, 1:-1] + p[:, :, 2:, 1:-1] + p[:, :, 1:-1, :-2] + p[:, :, 1:-1, 2:]) * 0.25
            out = held + (1 - weight) * neighbours
    return out


class InpaintGenerator(nn.Module):
    """G(image [N, C, H, W] in [-1, 1], mask [N, 1, H, W]) -> the composite [N, C, H, W]."""

    family = "inpaint"
    z_dim = 0  # fills images: no latent, no labels
    c_dim = 0

    @records_init_kwargs
    def __init__(
        self,
        *,
        img_resolution: int,
        img_channels: int,
        filters: int = 64,
        depth: int = 0,
        prefill: bool = True,
        prefill_equation: str = "harmonic",  # exports written before the key existed used the harmonic fill
        generator: str = "unet",
        channel_base: int = 8192,
        channel_max: int = 256,
        w_dim: int = 256,
        mapping_layers: int = 2,
    ):
        super().__init__()
        if generator not in ("unet", "comod"):
            raise ValueError(f"inpainting generator {generator!r}; valid choices: unet, comod")
        depth = depth or default_depth(img_resolution)  # 0: down to 1x1
        if prefill_equation not in PREFILL_EQUATIONS:
            raise ValueError(f"prefill equation {prefill_equation!r}; valid choices: {', '.join(PREFILL_EQUATIONS)}")
        self.img_resolution, self.img_channels, self.prefill = img_resolution, img_channels, prefill
        self.prefill_equation = prefill_equation
        self.generator = generator
        in_channels = 2 * img_channels + 1 if prefill else img_channels + 1
        if generator == "comod":  # StyleGAN2 synthesis: the training size only
            from trainer.models.comod import CoModNet

            self.net = None
            self.comod = CoModNet(
                in_channels=in_channels,
                img_channels=img_channels,
                resolution=img_resolution,
                channel_base=channel_base,
                channel_max=channel_max,
                w_dim=w_dim,
                mapping_layers=mapping_layers,
            )
            self.levels, self.size_multiple, self.fixed_size = img_resolution.bit_length() - 3, img_resolution, True
            return
        self.levels, self.size_multiple, self.fixed_size = depth, 2**depth, False  # sides dividing by 2**depth
        self.net = UNet(
            in_channels=in_channels, out_channels=img_channels, resolution=img_resolution, filters=filters, depth=depth
        )
        if prefill:  # start exactly at the smooth fill: the correction's last layer begins at zero
            last = self.net.up[-1][1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def fill(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """G's raw output (every pixel, before compositing)."""
        assert image.ndim == 4 and image.shape[1] == self.img_channels and mask.shape[1] == 1, (
            f"expects images [N, {self.img_channels}, H, W] and masks [N, 1, H, W], "
            f"got {list(image.shape)}, {list(mask.shape)}"
        )
        image, mask = image.to(self._dtype()), mask.to(self._dtype())
        net = self.net if self.net is not None else self.comod
        if not self.prefill:
            out = net(torch.cat([image * (1 - mask), mask * 2 - 1], dim=1))
            return out if self.net is not None else out.clamp(-1, 1)
        smooth = smooth_fill(image, mask, self.levels, self.prefill_equation)
        correction = net(torch.cat([image * (1 - mask), mask * 2 - 1, smooth], dim=1))  # U-Net: tanh, [-1, 1]
        return (smooth + correction).clamp(-1, 1)

    def forward(self, image: torch.Tensor, mask: Optional[torch.Tensor] = None, **_sampling) -> torch.Tensor:
        assert mask is not None, "inpainting needs a mask [N, 1, H, W] (1 = missing)"
        return composite(image.to(self._dtype()), self.fill(image, mask), mask)
