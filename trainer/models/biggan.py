"""BigGAN-style networks (Brock et al. 2019) at small scale: residual G blocks with
class-conditional batch norm fed by [z, shared class embedding], a SAGAN self-attention block
(Zhang et al. 2019), spectral normalization on every weight of G and D, and a projection
discriminator. Hinge loss and orthogonal regularization live in the loss/recipe; truncation is
`trainer.models.common.truncate_latent`.

Channels at resolution r are min(channel_base // r, channel_max), as in the other families.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from trainer.models.common import ProjectionHead, records_init_kwargs, truncate_latent


def _channels(res: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // res, channel_max)


def sn_conv(cin: int, cout: int, k: int) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, k, padding=k // 2))


def sn_linear(cin: int, cout: int, bias: bool = True) -> nn.Module:
    return spectral_norm(nn.Linear(cin, cout, bias=bias))


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine; gain and bias are linear functions of y (per sample)."""

    def __init__(self, channels: int, y_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = sn_linear(y_dim, channels, bias=False)
        self.bias = sn_linear(y_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # 1 + gain so an untrained layer is the identity affine, as in BigGAN.
        return self.bn(x) * (1 + self.gain(y))[:, :, None, None] + self.bias(y)[:, :, None, None]


class SelfAttention(nn.Module):
    """SAGAN attention: every position attends to a 2x-pooled map; gamma starts at 0, so the
    block starts as the identity and the networks learn how much non-local context to use."""

    def __init__(self, channels: int):
        super().__init__()
        self.c8, self.c2 = max(channels // 8, 1), max(channels // 2, 1)
        self.theta = spectral_norm(nn.Conv2d(channels, self.c8, 1, bias=False))
        self.phi = spectral_norm(nn.Conv2d(channels, self.c8, 1, bias=False))
        self.g = spectral_norm(nn.Conv2d(channels, self.c2, 1, bias=False))
        self.o = spectral_norm(nn.Conv2d(self.c2, channels, 1, bias=False))
        self.gamma = nn.Parameter(torch.zeros([1]))  # [1], not 0-d: DeepSpeed cannot broadcast 0-d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        theta = self.theta(x).flatten(2)  # [N, c8, HW]
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)  # [N, c8, HW/4]
        g = F.max_pool2d(self.g(x), 2).flatten(2)  # [N, c2, HW/4]
        attn = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # [N, HW, HW/4]
        o = (g @ attn.transpose(1, 2)).view(n, self.c2, h, w)
        return x + self.gamma * self.o(o)


class GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, y_dim: int):
        super().__init__()
        self.bn0, self.conv0 = ConditionalBatchNorm(cin, y_dim), sn_conv(cin, cout, 3)
        self.bn1, self.conv1 = ConditionalBatchNorm(cout, y_dim), sn_conv(cout, cout, 3)
        self.skip = sn_conv(cin, cout, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn0(x, y)), scale_factor=2)
        h = self.conv1(F.relu(self.bn1(self.conv0(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2))  # [N, cout, 2H, 2W]


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, *, preactivation: bool):
        super().__init__()
        self.preactivation = preactivation
        self.conv0, self.conv1, self.skip = sn_conv(cin, cout, 3), sn_conv(cout, cout, 3), sn_conv(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = F.avg_pool2d(self.conv1(F.relu(self.conv0(h))), 2)
        return h + F.avg_pool2d(self.skip(x), 2)  # [N, cout, H/2, W/2]


class BigGANGenerator(nn.Module):
    family = "biggan"

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
        embed_dim: int = 32,
        attention_res: int = 16,
    ):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        ch = lambda r: _channels(r, channel_base, channel_max)  # noqa: E731
        # One class embedding shared by every block (BigGAN's "shared embedding").
        self.embed = nn.Linear(c_dim, embed_dim, bias=False) if c_dim > 0 else None
        y_dim = z_dim + (embed_dim if c_dim > 0 else 0)
        self.fc = sn_linear(z_dim, ch(4) * 16)
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()
        res = 4
        while res < img_resolution:
            self.blocks.append(GBlock(ch(res), ch(res * 2), y_dim))
            res *= 2
            if res == attention_res:
                self.attention[str(len(self.blocks) - 1)] = SelfAttention(ch(res))
        self.out_bn = nn.BatchNorm2d(ch(img_resolution))
        self.out_conv = sn_conv(ch(img_resolution), img_channels, 3)
        self.ch4 = ch(4)

    def forward(
        self, z: torch.Tensor, c: Optional[torch.Tensor], *, truncation_psi: float = 1.0, noise_mode: str = "const"
    ) -> torch.Tensor:
        assert z.ndim == 2 and z.shape[1] == self.z_dim, f"z must be [N, {self.z_dim}], got {list(z.shape)}"
        z = truncate_latent(z, truncation_psi).to(self.out_bn.running_mean.dtype)
        y = z
        if self.embed is not None:
            assert c is not None and c.shape == (z.shape[0], self.c_dim), f"c must be [N, {self.c_dim}] one-hot labels"
            y = torch.cat([z, self.embed(c.to(z.dtype))], dim=1)
        x = self.fc(z).view(-1, self.ch4, 4, 4)
        for index, block in enumerate(self.blocks):
            x = block(x, y)
            if str(index) in self.attention:
                x = self.attention[str(index)](x)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(x))))  # [N, img_channels, R, R]


class BigGANDiscriminator(nn.Module):
    family = "biggan"

    @records_init_kwargs
    def __init__(
        self,
        *,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 4096,
        channel_max: int = 256,
        attention_res: int = 16,
    ):
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        ch = lambda r: _channels(r, channel_base, channel_max)  # noqa: E731
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()
        res, cin = img_resolution, img_channels
        while res > 4:
            if res == attention_res and self.blocks:
                self.attention[str(len(self.blocks))] = SelfAttention(cin)
            self.blocks.append(DBlock(cin, ch(res // 2), preactivation=bool(len(self.blocks))))
            res, cin = res // 2, ch(res // 2)
        self.head = ProjectionHead(cin, c_dim, wrap=spectral_norm)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        assert img.ndim == 4 and img.shape[1:] == (self.img_channels, self.img_resolution, self.img_resolution), (
            f"D expects images [N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}], "
            f"got {list(img.shape)}"
        )
        x = img.to(self.head.linear.parametrizations.weight.original.dtype)
        for index, block in enumerate(self.blocks):
            if str(index) in self.attention:
                x = self.attention[str(index)](x)
            x = block(x)
        h = F.relu(x).sum(dim=[2, 3])  # global sum pooling, [N, C]
        return self.head(h, c)  # [N, 1]
