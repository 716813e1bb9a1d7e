"""pix2pix (Isola et al. 2017) for paired image-to-image translation: a U-Net generator with skip
connections from each encoder level to the decoder level of the same size, and a PatchGAN
discriminator that scores patches of the input and the output side by side.

Both networks are fully convolutional: the U-Net runs on any image whose sides divide by
2**depth, the PatchGAN on any size at all, so an export trained on 256x256 crops translates
larger images whole (or in tiles, see trainer/paired_sample.py). The inpainting family reuses
the U-Net (`trainer.models.inpaint`).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from trainer.models.common import records_init_kwargs

# Instance norm needs a few pixels to estimate a mean and a variance; on a 1x1 map it turns every
# activation into 0 (and the U-Net's bottleneck is 1x1 at full depth), so levels smaller than
# this, measured at the training resolution, go without.
MIN_NORM_SIZE = 4


def _norm(channels: int, size: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True) if size >= MIN_NORM_SIZE else nn.Identity()


def unet_channels(filters: int, depth: int, max_mult: int = 8) -> list[int]:
    """Channels after encoder level i: filters * 2**i, at most filters * max_mult."""
    return [filters * min(2**i, max_mult) for i in range(depth)]


class UNet(nn.Module):
    """Encoder: `depth` stride-2 4x4 convs (LeakyReLU 0.2 before each but the first); decoder:
    stride-2 4x4 transposed convs (ReLU before each), each fed the previous decoder output
    concatenated with the encoder output of the same size; tanh on the last. An optional
    embedding of one-hot labels `c` is added to the bottleneck (conditional variants)."""

    def __init__(
        self, *, in_channels: int, out_channels: int, resolution: int, filters: int, depth: int, c_dim: int = 0
    ):
        super().__init__()
        self.depth = depth
        ch = unet_channels(filters, depth)
        self.down = nn.ModuleList()
        for i in range(depth):
            size = resolution >> (i + 1)  # output size at the training resolution
            conv = nn.Conv2d(in_channels if i == 0 else ch[i - 1], ch[i], 4, 2, 1)
            layers = [conv] if i == 0 else [nn.LeakyReLU(0.2), conv, _norm(ch[i], size)]
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            size = resolution >> i
            in_ch = ch[i] if i == depth - 1 else 2 * ch[i]  # the innermost level has no skip yet
            out_ch = out_channels if i == 0 else ch[i - 1]
            conv = nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1)
            self.up.append(nn.Sequential(nn.ReLU(), conv, nn.Tanh() if i == 0 else _norm(out_ch, size)))
        self.embed = nn.Linear(c_dim, ch[-1]) if c_dim else None

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        step = 2**self.depth
        assert x.shape[2] % step == 0 and x.shape[3] % step == 0, (
            f"image sides must divide by 2**depth={step}, got {list(x.shape[2:])}"
        )
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        if self.embed is not None:
            assert c is not None, "a conditional U-Net needs one-hot labels c"
            x = x + self.embed(c.to(x.dtype))[:, :, None, None]  # [N, ch, h, w] + [N, ch, 1, 1]
        for i, block in enumerate(self.up):
            if i:
                x = torch.cat([x, skips[self.depth - 1 - i]], dim=1)
            x = block(x)
        return x


def default_depth(resolution: int) -> int:
    """Down to 1x1 at the training resolution (8 levels at 256x256, as in the paper)."""
    return int(math.log2(resolution))


class Pix2PixGenerator(nn.Module):
    """G(input [N, in_channels, H, W] in [-1, 1], c) -> [N, img_channels, H, W] in [-1, 1]."""

    family = "pix2pix"
    z_dim = 0  # translates images: no latent

    @records_init_kwargs
    def __init__(
        self,
        *,
        img_resolution: int,
        img_channels: int,
        in_channels: int,
        c_dim: int = 0,
        filters: int = 64,
        depth: int = 0,
    ):
        super().__init__()
        depth = depth or default_depth(img_resolution)  # 0: down to 1x1
        self.img_resolution, self.img_channels, self.in_channels, self.c_dim = (
            img_resolution,
            img_channels,
            in_channels,
            c_dim,
        )
        self.size_multiple = 2**depth  # inputs of any size whose sides divide by this
        self.net = UNet(
            in_channels=in_channels,
            out_channels=img_channels,
            resolution=img_resolution,
            filters=filters,
            depth=depth,
            c_dim=c_dim,
        )

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None, **_sampling) -> torch.Tensor:
        assert x.ndim == 4 and x.shape[1] == self.in_channels, (
            f"expects inputs [N, {self.in_channels}, H, W], got {list(x.shape)}"
        )
        return self.net(x.to(self.net.down[0][0].weight.dtype), c)


class PatchDiscriminator(nn.Module):
    """PatchGAN on concat(condition, image): `layers` stride-2 4x4 convs, then two stride-1 4x4
    convs; with layers=3 each score sees a 70x70 patch. Labels (conditional variants) enter as a
    projection term on the last features (Miyato & Koyama 2018) at every patch."""

    def __init__(self, *, in_channels: int, filters: int = 64, layers: int = 3, c_dim: int = 0, resolution: int = 256):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_channels, filters, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = filters
        for i in range(1, layers):
            nxt = filters * min(2**i, 8)
            mods += [nn.Conv2d(ch, nxt, 4, 2, 1), _norm(nxt, resolution >> (i + 1)), nn.LeakyReLU(0.2)]
            ch = nxt
        nxt = filters * min(2**layers, 8)
        mods += [nn.Conv2d(ch, nxt, 4, 1, 1), _norm(nxt, (resolution >> layers) - 1), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*mods)
        self.out = nn.Conv2d(nxt, 1, 4, 1, 1)
        self.embed = nn.Linear(c_dim, nxt) if c_dim else None

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.features(x.to(self.out.weight.dtype))  # [N, ch, h, w]
        score = self.out(h)  # [N, 1, h-1, w-1]
        if self.embed is not None:
            proj = (h * self.embed(c.to(h.dtype))[:, :, None, None]).sum(1, keepdim=True)  # [N, 1, h, w]
            score = score + proj[:, :, : score.shape[2], : score.shape[3]]
        return score.flatten(1)  # [N, patches]


class Pix2PixDiscriminator(nn.Module):
    """D(image, c, cond=input): one PatchGAN score per patch of the pair."""

    family = "pix2pix"

    @records_init_kwargs
    def __init__(
        self,
        *,
        img_resolution: int,
        img_channels: int,
        in_channels: int,
        c_dim: int = 0,
        filters: int = 64,
        layers: int = 3,
    ):
        super().__init__()
        self.patch = PatchDiscriminator(
            in_channels=in_channels + img_channels,
            filters=filters,
            layers=layers,
            c_dim=c_dim,
            resolution=img_resolution,
        )

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor] = None, *, cond: torch.Tensor) -> torch.Tensor:
        return self.patch(torch.cat([cond.to(img.dtype), img], dim=1), c)


def receptive_field(layers: int) -> int:
    """Side of the input patch one PatchGAN score sees: 4x4 kernels, `layers` with stride 2, two with stride 1."""
    rf = 1
    for stride in [1, 1] + [2] * layers:  # walk back from the output
        rf = rf * stride + (4 - stride)
    return rf
