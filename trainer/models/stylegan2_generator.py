"""StyleGAN2 generator (Karras et al. 2020, config F): mapping network + synthesis network with
modulated/demodulated convolutions, per-pixel noise inputs and skip connections to RGB."""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

import kernels
from trainer.models.common import records_init_kwargs
from trainer.models.layers import FullyConnectedLayer, MappingNetwork


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // resolution, channel_max)


class SynthesisLayer(nn.Module):
    """A 3x3 modulated convolution (optionally upsampling by 2), noise, bias and lrelu."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        *,
        up: int = 1,
        conv_clamp: Optional[float] = None,
        resample_filter: torch.Tensor,
    ):
        super().__init__()
        self.resolution, self.up, self.conv_clamp = resolution, up, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)  # styles start at 1
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", resample_filter.clone())
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        # Shape [1], not a 0-d scalar: DeepSpeed cannot broadcast 0-d parameters.
        self.noise_strength = nn.Parameter(torch.zeros([1]))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, *, noise_mode: str = "random", fused_modconv: bool = True
    ) -> torch.Tensor:
        styles = self.affine(w)  # [N, in_channels]
        noise = None
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype)
            noise = noise * self.noise_strength.to(x.dtype)
        elif noise_mode == "const":
            noise = (self.noise_const * self.noise_strength).to(x.dtype)
        # bias, lrelu and clamp fused into the modulated conv (one pass on GPU, see kernels/)
        return kernels.modulated_conv2d(
            x,
            self.weight.to(x.dtype),
            styles,
            noise=noise,
            up=self.up,
            padding=1,
            resample_filter=self.resample_filter,
            flip_weight=(self.up == 1),
            fused_modconv=fused_modconv,
            bias=self.bias.to(x.dtype),
            act="lrelu",
            clamp=self.conv_clamp,
        )


class ToRGBLayer(nn.Module):
    """1x1 modulated convolution to image channels, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, *, conv_clamp: Optional[float] = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        return kernels.modulated_conv2d(
            x,
            self.weight.to(x.dtype),
            styles,
            demodulate=False,
            fused_modconv=fused_modconv,
            bias=self.bias.to(x.dtype),
            clamp=self.conv_clamp,
        )


class SynthesisBlock(nn.Module):
    """One resolution: (const input or 2x upsampling conv), conv, and a skip output to RGB."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        *,
        conv_clamp: Optional[float],
        resample_filter: torch.Tensor,
    ):
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        self.register_buffer("resample_filter", resample_filter.clone())
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim,
                resolution,
                up=2,
                conv_clamp=conv_clamp,
                resample_filter=resample_filter,
            )
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp, resample_filter=resample_filter
        )
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if self.conv0 is None else 2

    def forward(
        self,
        x: Optional[torch.Tensor],
        img: Optional[torch.Tensor],
        ws: torch.Tensor,
        *,
        noise_mode: str,
        fused_modconv: bool,
        attend: Optional[Callable] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # ws: [N, num_conv + 1, w_dim]; attend(resolution, x) -> x (an extension point: the
        # text2img family's cross-attention to caption tokens) runs on the features before toRGB.
        w_iter = iter(ws.unbind(dim=1))
        if self.conv0 is None:
            x = self.const.to(ws.dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        if attend is not None:
            x = attend(self.resolution, x)
        if img is not None:
            img = kernels.upsample2d(img, self.resample_filter)
        y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
        img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(
        self,
        *,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int,
        channel_max: int,
        conv_clamp: Optional[float],
    ):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        resolutions = [2**i for i in range(2, int(np.log2(img_resolution)) + 1)]
        resample_filter = kernels.setup_filter([1, 3, 3, 1])
        self.blocks = nn.ModuleList()
        in_channels = 0
        for res in resolutions:
            out_channels = channels_at(res, channel_base, channel_max)
            self.blocks.append(
                SynthesisBlock(
                    in_channels,
                    out_channels,
                    w_dim,
                    res,
                    img_channels,
                    conv_clamp=conv_clamp,
                    resample_filter=resample_filter,
                )
            )
            in_channels = out_channels
        # Each block consumes num_conv ws plus one for torgb; the torgb w is shared with the
        # next block's first conv, as in the reference design.
        self.num_ws = sum(block.num_conv for block in self.blocks) + 1

    def forward(
        self,
        ws: torch.Tensor,
        *,
        noise_mode: str = "random",
        fused_modconv: Optional[bool] = None,
        attend: Optional[Callable] = None,
    ) -> torch.Tensor:
        # Training runs the non-fused path (one shared-weight conv for the batch: faster and
        # lighter on memory for backward); inference folds styles into per-sample weights.
        if fused_modconv is None:
            fused_modconv = not self.training
        assert ws.ndim == 3 and ws.shape[1:] == (self.num_ws, self.w_dim), (
            f"ws must be [N, {self.num_ws}, {self.w_dim}]"
        )
        x = img = None
        index = 0
        for block in self.blocks:
            block_ws = ws.narrow(1, index, block.num_conv + 1)
            x, img = block(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused_modconv, attend=attend)
            index += block.num_conv
        return img  # [N, img_channels, img_resolution, img_resolution]


class Generator(nn.Module):
    family = "stylegan2"

    @records_init_kwargs
    def __init__(
        self,
        *,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_layers: int = 8,
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: Optional[float] = 256.0,
        mapping_lr_mult: float = 0.01,
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            conv_clamp=conv_clamp,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            num_ws=self.num_ws,
            num_layers=mapping_layers,
            lr_multiplier=mapping_lr_mult,
        )

    def forward(
        self,
        z: torch.Tensor,
        c: Optional[torch.Tensor],
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: Optional[int] = None,
        noise_mode: str = "random",
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)
