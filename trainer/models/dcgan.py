"""DCGAN (Radford et al. 2016): transposed convolutions with batch norm up to the image, strided
convolutions with leaky ReLU down to a score. Any power-of-two resolution; channels at
resolution r are min(channel_base // r, channel_max), as for StyleGAN2."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from trainer.models.common import ProjectionHead, dcgan_init, latent_input, records_init_kwargs

D_NORMS = ("batch", "none")


def _channels(res: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // res, channel_max)


class DCGANGenerator(nn.Module):
    family = "dcgan"

    @records_init_kwargs
    def __init__(
        self,
        *,
        z_dim: int,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 4096,
        channel_max: int = 256,
    ):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        ch = lambda r: _channels(r, channel_base, channel_max)  # noqa: E731
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim + c_dim, ch(4), 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch(4)),
            nn.ReLU(True),
        ]  # [N, ch(4), 4, 4]
        res = 4
        while res * 2 < img_resolution:
            layers += [
                nn.ConvTranspose2d(ch(res), ch(res * 2), 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch(res * 2)),
                nn.ReLU(True),
            ]
            res *= 2
        if img_resolution > 4:
            layers += [nn.ConvTranspose2d(ch(res), img_channels, 4, 2, 1), nn.Tanh()]
        else:
            layers += [nn.Conv2d(ch(4), img_channels, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(
        self, z: torch.Tensor, c: Optional[torch.Tensor], *, truncation_psi: float = 1.0, noise_mode: str = "const"
    ) -> torch.Tensor:
        x = latent_input(z, c, self.c_dim, self.z_dim, truncation_psi)
        x = x.to(self.net[0].weight.dtype)
        return self.net(x[:, :, None, None])  # [N, img_channels, R, R] in [-1, 1]


class DCGANDiscriminator(nn.Module):
    family = "dcgan"

    @records_init_kwargs
    def __init__(
        self,
        *,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 4096,
        channel_max: int = 256,
        norm: str = "batch",
    ):
        super().__init__()
        if norm not in D_NORMS:
            raise ValueError(f"DCGAN discriminator norm={norm!r}; valid choices: {', '.join(D_NORMS)}")
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        ch = lambda r: _channels(r, channel_base, channel_max)  # noqa: E731
        layers: list[nn.Module] = []
        res, in_ch = img_resolution, img_channels
        while res > 4:
            layers.append(nn.Conv2d(in_ch, ch(res // 2), 4, 2, 1, bias=norm == "none"))
            # No norm on the first layer (as in the paper); "none" keeps per-sample gradients
            # independent, which WGAN-GP's penalty assumes.
            if norm == "batch" and in_ch != img_channels:
                layers.append(nn.BatchNorm2d(ch(res // 2)))
            layers.append(nn.LeakyReLU(0.2, True))
            res, in_ch = res // 2, ch(res // 2)
        if not layers:  # a 4x4 image: one 1x1 conv so there is something to learn
            layers = [nn.Conv2d(img_channels, ch(4), 1), nn.LeakyReLU(0.2, True)]
            in_ch = ch(4)
        self.net = nn.Sequential(*layers)
        self.head = ProjectionHead(in_ch * 16, c_dim)
        dcgan_init(self)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        assert img.ndim == 4 and img.shape[1:] == (self.img_channels, self.img_resolution, self.img_resolution), (
            f"D expects images [N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}], "
            f"got {list(img.shape)}"
        )
        h = self.net(img.to(self.head.linear.weight.dtype))
        return self.head(h.flatten(1), c)  # [N, 1]
