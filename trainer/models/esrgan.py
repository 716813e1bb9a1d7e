"""ESRGAN's generator (RRDBNet: residual-in-residual dense blocks, Wang et al. 2018) and its
VGG-style discriminator, for the super-resolution family `esrgan` (docs/SUPERRES.md).

G maps a low-resolution image [N, C, h, w] in [-1, 1] to [N, C, h*scale, w*scale]. All of the
body runs at the low resolution; upsampling is x2 steps at the end, by nearest neighbour + conv
(ESRGAN) or sub-pixel conv (pixel shuffle). `residual="bicubic"` adds the bicubic upscale of the
input to the output, so the net learns only the missing detail and starts at bicubic quality
(what makes a tiny CPU-sized net useful within minutes; the paper's net has no such path).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.common import records_init_kwargs

UPSAMPLERS = ("nearest", "pixelshuffle")
RESIDUALS = ("none", "bicubic")
MIN_INPUT = 4  # smallest LR side G accepts; smaller inputs are refused with a clear error (sampling)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class DenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and every earlier output (dense connections);
    the fifth maps back to `features`, scaled by 0.2 and added to the input."""

    def __init__(self, features: int, growth: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(features + i * growth, growth if i < 4 else features, 3, 1, 1) for i in range(5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for i, conv in enumerate(self.convs):
            y = conv(torch.cat(outs, 1))
            if i < 4:
                outs.append(F.leaky_relu(y, 0.2))
        return x + 0.2 * y  # residual scaling keeps a deep stack of blocks stable without batch norm


class RRDB(nn.Module):
    """Residual in residual: three dense blocks, their sum scaled by 0.2 and added to the input."""

    def __init__(self, features: int, growth: int):
        super().__init__()
        self.blocks = nn.Sequential(*(DenseBlock(features, growth) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.blocks(x)


class RRDBNet(nn.Module):
    family = "esrgan"
    z_dim = 0  # maps images to images: no latent, no labels
    c_dim = 0

    @records_init_kwargs
    def __init__(
        self,
        *,
        img_resolution: int,
        img_channels: int = 3,
        scale: int = 4,
        blocks: int = 23,
        features: int = 64,
        growth: int = 32,
        upsample: str = "nearest",
        residual: str = "none",
    ):
        super().__init__()
        if scale not in (2, 4, 8):
            raise ValueError(f"scale={scale}; RRDBNet upsamples in x2 steps: use 2, 4 or 8")
        if upsample not in UPSAMPLERS or residual not in RESIDUALS:
            raise ValueError(f"upsample={upsample!r} residual={residual!r}; valid: {UPSAMPLERS}, {RESIDUALS}")
        self.img_resolution, self.img_channels, self.scale = img_resolution, img_channels, scale
        self.upsample_mode, self.residual = upsample, residual
        self.conv_first = nn.Conv2d(img_channels, features, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(features, growth) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(features, features, 3, 1, 1)
        steps = scale.bit_length() - 1
        if upsample == "nearest":
            self.ups = nn.ModuleList(nn.Conv2d(features, features, 3, 1, 1) for _ in range(steps))
        else:  # each step: conv to 4x channels, then move them into a 2x2 block of pixels
            self.ups = nn.ModuleList(nn.Conv2d(features, 4 * features, 3, 1, 1) for _ in range(steps))
        self.conv_hr = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_last = nn.Conv2d(features, img_channels, 3, 1, 1)
        if residual == "bicubic":
            # Start exactly at bicubic: the detail branch's last conv begins at zero.
            nn.init.zeros_(self.conv_last.weight)
            nn.init.zeros_(self.conv_last.bias)

    def forward(self, lr: torch.Tensor, c: Optional[torch.Tensor] = None, **_ignored) -> torch.Tensor:
        assert lr.ndim == 4 and lr.shape[1] == self.img_channels, (
            f"expects LR images [N, {self.img_channels}, h, w], got {list(lr.shape)}"
        )
        x = lr.to(self.conv_first.weight.dtype)
        feat = self.conv_first(x)  # [N, F, h, w]
        feat = feat + self.conv_body(self.body(feat))
        for conv in self.ups:  # [N, F, h, w] -> [N, F, h*scale, w*scale]
            if self.upsample_mode == "nearest":
                feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
            else:
                feat = F.leaky_relu(F.pixel_shuffle(conv(feat), 2), 0.2)
        out = self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))  # [N, C, h*scale, w*scale]
        if self.residual == "bicubic":
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return out


class VGGDiscriminator(nn.Module):
    """ESRGAN's VGG-style D: per level a 3x3 conv and a stride-2 4x4 conv (channels doubling up to
    8x), down to 4x4, then two linear layers to one logit per image. No batch norm (the paper has
    it): D scores real and fake batches in separate forwards, where batch statistics would differ."""

    family = "esrgan"

    def __init__(self, *, img_resolution: int, img_channels: int = 3, features: int = 64):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(img_channels, features, 3, 1, 1), _lrelu()]
        ch, res = features, img_resolution
        while res > 4:
            out = min(ch * 2, features * 8)
            layers += [nn.Conv2d(ch, ch, 3, 1, 1), _lrelu(), nn.Conv2d(ch, out, 4, 2, 1), _lrelu()]
            ch, res = out, res // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(ch * 4 * 4, 100), _lrelu(), nn.Linear(100, 1))
        self.img_resolution = img_resolution

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        assert img.shape[-1] == self.img_resolution, f"expects {self.img_resolution}px crops, got {list(img.shape)}"
        return self.head(self.features(img.to(self.head[1].weight.dtype)))  # [N, 1]


class PatchCritic(nn.Module):
    """pix2pix's PatchGAN on the image alone: one logit per overlapping patch ([N, patches]), so D
    judges local texture, where SR output and real photos differ most. Instance norm inside; pair
    it with R1 (loss.r1_gamma), as the inpainting family does."""

    family = "esrgan"

    def __init__(self, *, img_resolution: int, img_channels: int = 3, features: int = 64, layers: int = 2):
        super().__init__()
        from trainer.models.pix2pix import PatchDiscriminator

        self.img_resolution = img_resolution
        self.patch = PatchDiscriminator(
            in_channels=img_channels, filters=features, layers=layers, resolution=img_resolution
        )

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.patch(img)


def build_esrgan(cfg) -> tuple[nn.Module, nn.Module]:
    """(RRDBNet, D) from the config; `sr.init_from` loads a PSNR-stage export into G first."""
    from trainer.models.unet_discriminator import UNetDiscriminator

    s, d = cfg.sr, cfg.data
    G = RRDBNet(
        img_resolution=d.resolution,
        img_channels=d.channels,
        scale=s.scale,
        blocks=s.blocks,
        features=s.features,
        growth=s.growth,
        upsample=s.upsample,
        residual=s.residual,
    )
    if s.discriminator == "patch":
        D = PatchCritic(
            img_resolution=d.resolution, img_channels=d.channels, features=s.d_features, layers=s.patch_layers
        )
    else:
        D_class = VGGDiscriminator if s.discriminator == "vgg" else UNetDiscriminator
        D = D_class(img_resolution=d.resolution, img_channels=d.channels, features=s.d_features)
    if s.init_from:
        load_into(G, s.init_from)
    return G, D


def load_into(G: nn.Module, export: str) -> None:
    """Copy an export's weights into G; a mismatch (another family, size or scale) is a clear error
    naming sr.init_from. Tensors only (safetensors): nothing is unpickled."""
    from pathlib import Path

    from safetensors.torch import load_file

    path = Path(export).expanduser()
    weights = path / "generator.safetensors" if path.is_dir() else path
    if path.is_dir() and not weights.is_file():
        weights = path / "export" / "generator.safetensors"  # a run directory
    if not weights.is_file():
        raise ValueError(f"sr.init_from: '{export}' holds no generator.safetensors; pass a PSNR-stage export")
    tensors = load_file(str(weights))
    expected = G.state_dict()
    wrong = sorted(set(expected) ^ set(tensors)) + [
        k for k in expected if k in tensors and tensors[k].shape != expected[k].shape
    ]
    if wrong:
        raise ValueError(
            f"sr.init_from: '{weights}' does not fit this G (sr.blocks/features/growth/scale/"
            f"upsample must match the PSNR stage): {wrong[:4]}"
        )
    G.load_state_dict(tensors)
