"""Equalized-learning-rate building blocks shared by the StyleGAN-family networks.

Weights are stored at unit variance and scaled at run time (He constant / lr multiplier), so
Adam sees every layer at the same scale ("equalized learning rate", Karras et al. 2018).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

import kernels


class FullyConnectedLayer(nn.Module):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ):
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return kernels.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}"


class Conv2dLayer(nn.Module):
    """Convolution with optional FIR up/downsampling, bias, activation and clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: Optional[float] = None,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.register_buffer("resample_filter", kernels.setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        x = kernels.conv2d_resample(
            x, w, f=self.resample_filter, up=self.up, down=self.down, padding=self.padding, flip_weight=(self.up == 1)
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return kernels.bias_act(x, b, act=self.activation, gain=_act_gain(self.activation) * gain, clamp=clamp)

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, act={self.activation}, up={self.up}, down={self.down}"


def _act_gain(activation: str) -> float:
    return math.sqrt(2) if activation in ("relu", "lrelu") else 1.0


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z (and an embedded class label) -> w, broadcast to `num_ws` style inputs.

    Keeps a running average of w (`w_avg`) for the truncation trick at sampling time.
    """

    def __init__(
        self,
        *,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: Optional[int],
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        w_avg_beta: Optional[float] = 0.995,
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        embed = w_dim if c_dim > 0 else 0
        self.embed = FullyConnectedLayer(c_dim, embed) if c_dim > 0 else None
        features = [z_dim + embed] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            FullyConnectedLayer(i, o, activation="lrelu", lr_multiplier=lr_multiplier)
            for i, o in zip(features[:-1], features[1:])
        )
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: Optional[torch.Tensor],
        c: Optional[torch.Tensor],
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: Optional[int] = None,
        update_w_avg: bool = False,
    ) -> torch.Tensor:
        parts = []
        if self.z_dim > 0:
            assert z is not None and z.shape[1] == self.z_dim, f"z must be [N, {self.z_dim}]"
            parts.append(normalize_2nd_moment(z))
        if self.c_dim > 0:
            assert c is not None and c.shape[1] == self.c_dim, f"c must be [N, {self.c_dim}]"
            parts.append(normalize_2nd_moment(self.embed(c.to(self.embed.weight.dtype))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = layer(x)
        if update_w_avg and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            assert self.w_avg_beta is not None and self.num_ws is not None
            avg = self.w_avg.to(x.dtype)
            if truncation_cutoff is None:
                x = avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x
