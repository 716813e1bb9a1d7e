"""Pieces shared by the model families: recorded constructor arguments (for exports), latent
input (labels, truncation) and the projection head of conditional discriminators."""

from __future__ import annotations

import functools
import inspect
from typing import Optional

import torch
from torch import nn


def records_init_kwargs(init):
    """Decorate a network's `__init__` so the arguments it was built with, defaults filled in, are
    kept as `self.init_kwargs`. Exports store them and rebuild the network from them
    (`trainer.models.build_generator`), so a family's parameters are written once: in the
    signature. Constructors take keyword arguments of JSON types only."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        init(self, *args, **kwargs)
        self.init_kwargs = {name: value for name, value in bound.arguments.items() if name != "self"}

    return wrapper


def truncate_latent(z: torch.Tensor, psi: float) -> torch.Tensor:
    """BigGAN's truncation trick as a deterministic map: psi < 1 sends each entry of z through
    the inverse CDF so that N(0, 1) becomes N(0, 1) truncated to [-psi, psi]; psi >= 1 (the CLI's
    default) leaves z alone. A map, not rejection sampling, so a seed always gives one image
    whatever batch it is drawn in."""
    if psi >= 1:
        return z
    if psi <= 0:
        return torch.zeros_like(z)
    lo = torch.special.ndtr(torch.tensor(-psi, dtype=torch.float64))
    u = torch.special.ndtr(z.double())
    return torch.special.ndtri(lo + u * (1 - 2 * lo)).to(z.dtype)


def latent_input(
    z: torch.Tensor, c: Optional[torch.Tensor], c_dim: int, z_dim: int, truncation_psi: float = 1.0
) -> torch.Tensor:
    """[z, one-hot c] for conditional generators (the classic cGAN input), z alone otherwise."""
    assert z.ndim == 2 and z.shape[1] == z_dim, f"z must be [N, {z_dim}], got {list(z.shape)}"
    z = truncate_latent(z, truncation_psi)
    if c_dim == 0:
        return z
    assert c is not None and c.shape == (z.shape[0], c_dim), f"c must be [N, {c_dim}] one-hot labels"
    return torch.cat([z, c.to(z.dtype)], dim=1)


class ProjectionHead(nn.Module):
    """Score = linear(h) + <embed(c), h> (Miyato & Koyama 2018): the label enters as an inner
    product with D's features, which conditions D without an auxiliary classifier."""

    def __init__(self, features: int, c_dim: int, *, wrap=lambda m: m):
        super().__init__()
        self.c_dim = c_dim
        self.linear = wrap(nn.Linear(features, 1))
        self.embed = wrap(nn.Linear(c_dim, features, bias=False)) if c_dim > 0 else None

    def forward(self, h: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        out = self.linear(h)  # [N, 1]
        if self.embed is not None:
            assert c is not None, "this discriminator is conditional: pass labels"
            out = out + (self.embed(c.to(h.dtype)) * h).sum(dim=1, keepdim=True)
        return out


def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) weights and zero biases, BN gains N(1, 0.02) (Radford et al. 2016)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
