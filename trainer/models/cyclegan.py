"""CycleGAN (Zhu et al. 2017) for unpaired translation between domains A and B: two ResNet
generators (A->B, B->A) with instance norm, and two PatchGAN discriminators.

Each pair is one nn.Module, so the trainer's two DeepSpeed engines (G, D), G_ema, checkpoints
and exports take them unchanged; the export holds both directions.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from trainer.models.common import records_init_kwargs


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def resnet_generator(channels: int, filters: int, blocks: int) -> nn.Module:
    """c7s1-f, d2f, d4f, `blocks` residual blocks, u2f, uf, c7s1-channels, tanh (the paper's
    notation); two stride-2 steps, so the resolution must divide by 4."""
    f = filters
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(channels, f, 7),
        _norm(f),
        nn.ReLU(True),
        nn.Conv2d(f, 2 * f, 3, 2, 1),
        _norm(2 * f),
        nn.ReLU(True),
        nn.Conv2d(2 * f, 4 * f, 3, 2, 1),
        _norm(4 * f),
        nn.ReLU(True),
    ]
    layers += [ResnetBlock(4 * f) for _ in range(blocks)]
    layers += [
        nn.ConvTranspose2d(4 * f, 2 * f, 3, 2, 1, output_padding=1),
        _norm(2 * f),
        nn.ReLU(True),
        nn.ConvTranspose2d(2 * f, f, 3, 2, 1, output_padding=1),
        _norm(f),
        nn.ReLU(True),
        nn.ReflectionPad2d(3),
        nn.Conv2d(f, channels, 7),
        nn.Tanh(),
    ]
    return nn.Sequential(*layers)


def patch_discriminator(channels: int, filters: int, layers: int) -> nn.Module:
    """PatchGAN: `layers` stride-2 convs then two stride-1 convs; one score per patch."""
    f = filters
    mods: list[nn.Module] = [nn.Conv2d(channels, f, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    for i in range(1, layers):
        mods += [nn.Conv2d(f * 2 ** (i - 1), f * 2**i, 4, 2, 1), _norm(f * 2**i), nn.LeakyReLU(0.2, True)]
    top = f * 2 ** (layers - 1)
    mods += [nn.Conv2d(top, top * 2, 4, 1, 1), _norm(top * 2), nn.LeakyReLU(0.2, True), nn.Conv2d(top * 2, 1, 4, 1, 1)]
    return nn.Sequential(*mods)


class CycleGenerators(nn.Module):
    family = "cyclegan"
    z_dim = 0  # translates images; no latent and no labels
    c_dim = 0

    @records_init_kwargs
    def __init__(self, *, img_resolution: int, img_channels: int, filters: int = 64, blocks: int = 6):
        super().__init__()
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.ab = resnet_generator(img_channels, filters, blocks)
        self.ba = resnet_generator(img_channels, filters, blocks)

    def forward(
        self,
        x: torch.Tensor,
        c: Optional[torch.Tensor] = None,
        *,
        direction: str = "ab",
        truncation_psi: float = 1.0,
        noise_mode: str = "const",
    ) -> torch.Tensor:
        assert x.ndim == 4 and x.shape[1:] == (self.img_channels, self.img_resolution, self.img_resolution), (
            f"expects images [N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}], "
            f"got {list(x.shape)}"
        )
        if direction not in ("ab", "ba"):
            raise ValueError(f"direction={direction!r}; valid choices: ab, ba")
        net = self.ab if direction == "ab" else self.ba
        return net(x.to(net[1].weight.dtype))


class CycleDiscriminators(nn.Module):
    family = "cyclegan"

    @records_init_kwargs
    def __init__(self, *, img_resolution: int, img_channels: int, filters: int = 64, layers: int = 3):
        super().__init__()
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.a = patch_discriminator(img_channels, filters, layers)  # real A vs G_ba's images
        self.b = patch_discriminator(img_channels, filters, layers)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor] = None, *, domain: str = "a") -> torch.Tensor:
        net = self.a if domain == "a" else self.b
        return net(img.to(net[0].weight.dtype)).flatten(1)  # [N, patches] scores
