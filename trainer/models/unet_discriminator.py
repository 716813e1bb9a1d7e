"""The spectrally normalised U-Net discriminator of Real-ESRGAN (Wang et al. 2021): one real/fake
logit per pixel, so D tells G where an image looks wrong, not only whether it does.

Three stride-2 convs down (x1, x2, x4, x8 features), bilinear x2 up with skip additions back to
full resolution, two more convs and a 1-channel head. Every conv between the first and the head
is spectrally normalised, which keeps this deep D Lipschitz-bounded without a gradient penalty.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


class UNetDiscriminator(nn.Module):
    family = "esrgan"

    def __init__(self, *, img_resolution: int, img_channels: int = 3, features: int = 64):
        super().__init__()
        f = features
        self.img_resolution = img_resolution
        self.conv0 = nn.Conv2d(img_channels, f, 3, 1, 1)
        self.down = nn.ModuleList(
            spectral_norm(nn.Conv2d(a, b, 4, 2, 1, bias=False)) for a, b in ((f, 2 * f), (2 * f, 4 * f), (4 * f, 8 * f))
        )
        self.up = nn.ModuleList(
            spectral_norm(nn.Conv2d(a, b, 3, 1, 1, bias=False)) for a, b in ((8 * f, 4 * f), (4 * f, 2 * f), (2 * f, f))
        )
        self.extra = nn.ModuleList(spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False)) for _ in range(2))
        self.head = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        h, w = img.shape[-2:]
        assert h % 8 == 0 and w % 8 == 0, f"the U-Net D needs sides divisible by 8, got {list(img.shape)}"
        x = F.leaky_relu(self.conv0(img.to(self.head.weight.dtype)), 0.2)  # [N, f, H, W]
        skips = [x]
        for conv in self.down:  # -> [N, 8f, H/8, W/8]
            x = F.leaky_relu(conv(x), 0.2)
            skips.append(x)
        skips.pop()  # the bottom is x itself
        for conv in self.up:  # -> [N, f, H, W], adding the matching skip at every level
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = F.leaky_relu(conv(x), 0.2) + skips.pop()
        for conv in self.extra:
            x = F.leaky_relu(conv(x), 0.2)
        return self.head(x)  # [N, 1, H, W] per-pixel logits
