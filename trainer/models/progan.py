"""Progressive GAN (Karras et al. 2018): G and D hold every resolution from 4x4 up from the
start, but only run up to the current *level*; a new level fades in linearly (alpha 0 -> 1)
next to the 2x-upsampled output (G) / 2x-downsampled input (D) of the level below. Pixel norm,
minibatch stddev and equalized learning rate as in the paper.

Images stay at the full resolution at the interface (G's output is nearest-upsampled, D
average-pools its input), as in the reference implementation: the DeepSpeed engines, data
batches and exports keep one shape while the networks grow. The stage (level, alpha) is set by
the recipe every step from images seen (so a resume mid-fade continues exactly) and is also a
buffer, so checkpoints and exports remember it.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.common import ProjectionHead, records_init_kwargs, truncate_latent


def _channels(res: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // res, channel_max)


class EqConv2d(nn.Module):
    """Conv with weights stored at unit variance and scaled by He's constant at run time."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.gain, self.padding = 1 / math.sqrt(cin * k * k), k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.gain, self.bias, padding=self.padding)


class EqLinear(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.gain = 1 / math.sqrt(cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.gain, self.bias)


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class Staged(nn.Module):
    """The growth stage shared by G and D: python numbers for the forward pass (no host sync),
    mirrored in a buffer that checkpoints and exports carry."""

    def _init_stage(self, max_level: int) -> None:
        self.max_level = max_level
        self.register_buffer("stage", torch.tensor([float(max_level), 1.0]))  # [level, alpha]
        self.level, self.alpha = max_level, 1.0

    def set_stage(self, level: int, alpha: float) -> None:
        assert 0 <= level <= self.max_level and 0.0 <= alpha <= 1.0, (level, alpha)
        self.level, self.alpha = int(level), float(alpha)
        self.stage.copy_(torch.tensor([float(level), float(alpha)]))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        level, alpha = self.stage.tolist()
        self.level, self.alpha = int(level), float(alpha)


class ProGANGenerator(Staged):
    family = "progan"

    @records_init_kwargs
    def __init__(
        self,
        *,
        z_dim: int,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 8192,
        channel_max: int = 512,
    ):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        ch = lambda r: _channels(r, channel_base, channel_max)  # noqa: E731
        levels = int(np.log2(img_resolution)) - 1  # level 0 is 4x4
        self.fc = EqLinear(z_dim + c_dim, ch(4) * 16)
        self.conv4 = EqConv2d(ch(4), ch(4), 3)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqConv2d(ch(4 << (i - 1)), ch(4 << i), 3), EqConv2d(ch(4 << i), ch(4 << i), 3)])
            for i in range(1, levels)
        )
        self.torgb = nn.ModuleList(EqConv2d(ch(4 << i), img_channels, 1) for i in range(levels))
        self._init_stage(levels - 1)
        self.ch4 = ch(4)

    def forward(
        self, z: torch.Tensor, c: Optional[torch.Tensor], *, truncation_psi: float = 1.0, noise_mode: str = "const"
    ) -> torch.Tensor:
        assert z.ndim == 2 and z.shape[1] == self.z_dim, f"z must be [N, {self.z_dim}], got {list(z.shape)}"
        x = pixel_norm(truncate_latent(z, truncation_psi).to(self.fc.weight.dtype))
        if self.c_dim:
            assert c is not None and c.shape == (z.shape[0], self.c_dim), f"c must be [N, {self.c_dim}] one-hot labels"
            x = torch.cat([x, c.to(x.dtype)], dim=1)
        x = pixel_norm(lrelu(self.fc(x).view(-1, self.ch4, 4, 4)))
        x = pixel_norm(lrelu(self.conv4(x)))
        previous = x
        for i in range(1, self.level + 1):
            previous = x
            x = F.interpolate(x, scale_factor=2)
            for conv in self.blocks[i - 1]:
                x = pixel_norm(lrelu(conv(x)))
        img = self.torgb[self.level](x)
        if self.level > 0 and self.alpha < 1:
            low = F.interpolate(self.torgb[self.level - 1](previous), scale_factor=2)
            img = low.lerp(img, self.alpha)
        # Back to the full size at the interface (nearest: each pixel becomes a block).
        return F.interpolate(img, size=self.img_resolution) if img.shape[2] != self.img_resolution else img


class MinibatchStd(nn.Module):
    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group, n)
        if n % g:
            g = 1
        y = x.view(g, -1, c, h, w).float()
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=[1, 2, 3])  # [N/g]
        y = y.to(x.dtype).view(-1, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class ProGANDiscriminator(Staged):
    family = "progan"

    @records_init_kwargs
    def __init__(
        self,
        *,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 8192,
        channel_max: int = 512,
        mbstd_group: int = 4,
    ):
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        ch = lambda r: _channels(r, channel_base, channel_max)  # noqa: E731
        levels = int(np.log2(img_resolution)) - 1
        self.fromrgb = nn.ModuleList(EqConv2d(img_channels, ch(4 << i), 1) for i in range(levels))
        # blocks[i-1] takes level i (4 << i pixels) down to level i - 1.
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqConv2d(ch(4 << i), ch(4 << i), 3), EqConv2d(ch(4 << i), ch(4 << (i - 1)), 3)])
            for i in range(1, levels)
        )
        self.mbstd = MinibatchStd(mbstd_group)
        self.conv4 = EqConv2d(ch(4) + 1, ch(4), 3)
        self.fc = EqLinear(ch(4) * 16, ch(4))
        self.head = ProjectionHead(ch(4), c_dim)
        self._init_stage(levels - 1)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        assert img.ndim == 4 and img.shape[1:] == (self.img_channels, self.img_resolution, self.img_resolution), (
            f"D expects images [N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}], "
            f"got {list(img.shape)}"
        )
        img = img.to(self.fc.weight.dtype)
        size = 4 << self.level
        if size != self.img_resolution:
            img = F.adaptive_avg_pool2d(img, size)  # the inverse of G's nearest upsampling
        x = lrelu(self.fromrgb[self.level](img))
        for i in range(self.level, 0, -1):
            for conv in self.blocks[i - 1]:
                x = lrelu(conv(x))
            x = F.avg_pool2d(x, 2)
            if i == self.level and self.alpha < 1:
                low = lrelu(self.fromrgb[i - 1](F.avg_pool2d(img, 2)))
                x = low.lerp(x, self.alpha)
        x = lrelu(self.conv4(self.mbstd(x)))
        return self.head(lrelu(self.fc(x.flatten(1))), c)  # [N, 1]


def stage_at(
    kimg: float, *, max_level: int, start_level: int, stable_kimg: float, fade_kimg: float
) -> tuple[int, float]:
    """(level, alpha) after `kimg` thousand images: stable_kimg at the start level, then per new
    level fade_kimg of fade-in (alpha 0 -> 1) and stable_kimg at full strength."""
    t = kimg - stable_kimg
    if t < 0 or start_level >= max_level:
        return min(start_level, max_level), 1.0
    period = fade_kimg + stable_kimg
    grown = int(t // period)
    level = start_level + grown + 1
    if level > max_level:
        return max_level, 1.0
    within = t - grown * period
    alpha = 1.0 if fade_kimg <= 0 else min(within / fade_kimg, 1.0)
    return level, alpha
