"""StyleGAN2 residual discriminator with minibatch standard deviation and, for conditional
models, a projection head (Miyato & Koyama 2018): the score is <features, embed(c)>."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import nn

from trainer.models.common import records_init_kwargs
from trainer.models.layers import Conv2dLayer, FullyConnectedLayer, MappingNetwork
from trainer.models.stylegan2_generator import channels_at


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs (the second downsamples by 2) plus a 1x1 downsampling residual path."""

    def __init__(
        self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int, *, conv_clamp: Optional[float]
    ):
        super().__init__()
        self.fromrgb = (
            Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
            if in_channels == 0
            else None
        )
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: Optional[torch.Tensor], img: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(img)
        # sqrt(0.5) keeps the variance of the residual sum equal to its inputs'.
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y.add_(x)


class MinibatchStdLayer(nn.Module):
    """Appends the (grouped) standard deviation across the batch as extra feature maps, so D can
    see a lack of variety in a batch of fakes."""

    def __init__(self, group_size: int, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        G = min(self.group_size, N)
        while N % G:  # the largest group size that divides the batch
            G -= 1
        F = self.num_channels
        y = x.reshape(G, -1, F, C // F, H, W)  # [G, n, F, c, H, W]
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [n, F]
        y = y.reshape(-1, F, 1, 1).repeat(G, 1, H, W)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    def __init__(
        self, in_channels: int, cmap_dim: int, resolution: int, *, mbstd_group: int, conv_clamp: Optional[float]
    ):
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdLayer(mbstd_group)
        self.conv = Conv2dLayer(in_channels + 1, in_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, cmap_dim if cmap_dim > 0 else 1)

    def forward(self, x: torch.Tensor, cmap: Optional[torch.Tensor]) -> torch.Tensor:
        x = self.conv(self.mbstd(x))
        x = self.out(self.fc(x.flatten(1)))
        if cmap is not None:
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x  # [N, 1] logits


class Discriminator(nn.Module):
    family = "stylegan2"

    @records_init_kwargs
    def __init__(
        self,
        *,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        mbstd_group: int = 4,
        conv_clamp: Optional[float] = 256.0,
        mapping_layers: int = 8,
    ):
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        resolutions = [2**i for i in range(int(np.log2(img_resolution)), 2, -1)]
        blocks = []
        for index, res in enumerate(resolutions):
            in_channels = channels_at(res, channel_base, channel_max) if index > 0 else 0
            tmp_channels = channels_at(res, channel_base, channel_max)
            out_channels = channels_at(res // 2, channel_base, channel_max)
            blocks.append(
                DiscriminatorBlock(in_channels, tmp_channels, out_channels, img_channels, conv_clamp=conv_clamp)
            )
        self.blocks = nn.ModuleList(blocks)
        cmap_dim = channels_at(4, channel_base, channel_max) if c_dim > 0 else 0
        # The class embedding uses the mapping-network design (label -> cmap) without z.
        self.mapping = (
            MappingNetwork(
                z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, num_layers=mapping_layers, w_avg_beta=None
            )
            if c_dim > 0
            else None
        )
        self.epilogue = DiscriminatorEpilogue(
            channels_at(4, channel_base, channel_max), cmap_dim, 4, mbstd_group=mbstd_group, conv_clamp=conv_clamp
        )

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        assert img.ndim == 4 and img.shape[1:] == (self.img_channels, self.img_resolution, self.img_resolution), (
            f"D expects images [N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}], "
            f"got {list(img.shape)}"
        )
        img = img.to(self.epilogue.out.weight.dtype)
        x = None
        for block in self.blocks:
            x = block(x, img)
        cmap = self.mapping(None, c) if self.mapping is not None else None
        return self.epilogue(x, cmap)
