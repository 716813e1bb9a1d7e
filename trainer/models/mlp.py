"""The plain MLP GAN of the original GAN paper's MNIST experiments (Goodfellow et al. 2014),
with leaky ReLU instead of maxout: fully connected layers from z to pixels and back to a score."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from trainer.models.common import ProjectionHead, latent_input, records_init_kwargs
from trainer.models.stylegan2_discriminator import MinibatchStdLayer


class MLPGenerator(nn.Module):
    family = "mlp"

    @records_init_kwargs
    def __init__(
        self,
        *,
        z_dim: int,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        hidden: int = 512,
        layers: int = 3,
        batch_norm: bool = False,
    ):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        blocks: list[nn.Module] = []
        width = z_dim + c_dim
        for _ in range(layers):
            blocks.append(nn.Linear(width, hidden))
            if batch_norm:  # as in DCGAN's G: each layer's features keep the batch's spread
                blocks.append(nn.BatchNorm1d(hidden))
            blocks.append(nn.LeakyReLU(0.2, True))
            width = hidden
        blocks += [nn.Linear(width, img_channels * img_resolution**2), nn.Tanh()]
        self.net = nn.Sequential(*blocks)

    def forward(
        self, z: torch.Tensor, c: Optional[torch.Tensor], *, truncation_psi: float = 1.0, noise_mode: str = "const"
    ) -> torch.Tensor:
        x = latent_input(z, c, self.c_dim, self.z_dim, truncation_psi).to(self.net[0].weight.dtype)
        return self.net(x).view(-1, self.img_channels, self.img_resolution, self.img_resolution)


class MLPDiscriminator(nn.Module):
    family = "mlp"

    @records_init_kwargs
    def __init__(
        self,
        *,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        hidden: int = 512,
        layers: int = 3,
        dropout: float = 0.0,
        mbstd_group: int = 0,
    ):
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        blocks: list[nn.Module] = []
        width = img_channels * img_resolution**2
        for i in range(layers):
            if mbstd_group > 0 and i == layers - 1:
                # Before the last hidden layer, as ProGAN does before its last conv: the spread of
                # the features across a group of images, one extra input. A G that draws the same
                # digit for every z shows a small spread, so D can tell its batches from real ones.
                blocks += [_FeatureMinibatchStd(mbstd_group)]
                width += 1
            blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2, True)]
            if dropout > 0:  # keeps D from memorizing the few real digits, so G keeps a useful gradient
                blocks.append(nn.Dropout(dropout))
            width = hidden
        self.net = nn.Sequential(*blocks)
        self.head = ProjectionHead(width, c_dim)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        assert img.ndim == 4 and img.shape[1:] == (self.img_channels, self.img_resolution, self.img_resolution), (
            f"D expects images [N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}], "
            f"got {list(img.shape)}"
        )
        return self.head(self.net(img.flatten(1).to(self.head.linear.weight.dtype)), c)  # [N, 1]


class _FeatureMinibatchStd(nn.Module):
    """The minibatch standard deviation of flat features [N, F] -> [N, F + 1]: the image layer
    applied to F channels of 1x1 maps."""

    def __init__(self, group_size: int):
        super().__init__()
        self.layer = MinibatchStdLayer(group_size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.layer(h[:, :, None, None]).flatten(1)
