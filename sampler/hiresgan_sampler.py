"""Standalone sampler for hiresgan exports: needs torch and safetensors only (plus the standard
library). Copy this one file next to your code; it never imports hiresgan's training code and
never unpickles anything.

    python hiresgan_sampler.py runs/digits/export --seeds 0-7 --class 3 --truncation 0.7 --out samples/

    from hiresgan_sampler import load_generator, latents
    G, description = load_generator("runs/digits/export")
    images = G(latents([0, 1, 2], G.z_dim), G.one_hot([3, 3, 3]))  # [3, C, H, W] in [-1, 1]

It re-implements the exported StyleGAN2 generator's inference path in plain torch ops that are
batch-size agnostic (the style scales the input, one shared-weight convolution, the
demodulation scales the output), so the same module traces to TorchScript and ONNX. Noise is
the fixed per-layer noise stored in the export ("const" noise), as `hiresgan sample` uses.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import zlib
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

FORMAT, MAX_FORMAT_VERSION = "hiresgan-generator", 1


class ExportError(ValueError):
    pass


# ---------------------------------------------------------------------------------------- ops
def _lrelu(x: torch.Tensor, clamp: Optional[float] = None) -> torch.Tensor:
    x = F.leaky_relu(x, 0.2) * math.sqrt(2)  # gain sqrt(2) keeps the activations' variance
    return x.clamp(-clamp, clamp) if clamp is not None else x


def _fir(
    x: torch.Tensor, f: torch.Tensor, c: int, up: int, pad: tuple[int, int, int, int], gain: float
) -> torch.Tensor:
    """Zero-insertion upsampling by `up`, padding (x0, x1, y0, y1), 2-D FIR filter times gain.

    The channel count `c` is a Python int, not read from x.shape, so traced graphs (ONNX) see
    a filter of known shape while the batch size stays free."""
    h, w = x.shape[2], x.shape[3]
    if up > 1:
        x = x.reshape(-1, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(-1, c, h * up, w * up)
    x = F.pad(x, list(pad))
    weight = (f * gain).flip([0, 1]).to(x.dtype)[None, None].repeat(c, 1, 1, 1)  # a true convolution
    return F.conv2d(x, weight, groups=c)


class Dense(nn.Module):
    """Equalized-learning-rate linear layer: the stored weight is scaled at run time."""

    def __init__(self, in_features: int, out_features: int, lr_multiplier: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


# ------------------------------------------------------------------------------------ modules
class Mapping(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_layers: int, lr_multiplier: float):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.embed = Dense(c_dim, w_dim) if c_dim > 0 else None
        sizes = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        self.layers = nn.ModuleList(Dense(i, o, lr_multiplier) for i, o in zip(sizes[:-1], sizes[1:]))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        x = _normalize(z)
        if self.embed is not None:
            assert c is not None, "this generator is conditional: pass one-hot classes"
            x = torch.cat([x, _normalize(self.embed(c))], dim=1)
        for layer in self.layers:
            x = _lrelu(layer(x))
        return x  # [N, w_dim]


class Layer(nn.Module):
    """Modulated 3x3 convolution (optionally upsampling by 2), const noise, bias, lrelu, clamp."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, res: int, up: int, clamp: Optional[float]):
        super().__init__()
        self.up, self.clamp, self.out_ch = up, clamp, out_ch
        self.affine = Dense(w_dim, in_ch)
        self.weight = nn.Parameter(torch.zeros(out_ch, in_ch, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.register_buffer("resample_filter", torch.zeros(4, 4))
        self.register_buffer("noise_const", torch.zeros(res, res))
        self.noise_strength = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # [N, in_ch]
        demod = (styles.square() @ self.weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, out_ch]
        x = x * styles[:, :, None, None]
        if self.up == 1:
            x = F.conv2d(x, self.weight, padding=1)
        else:
            # Transposed stride-2 conv = zero insertion + conv; then the FIR low-pass (gain 4).
            x = F.conv_transpose2d(x, self.weight.transpose(0, 1), stride=2)
            x = _fir(x, self.resample_filter, self.out_ch, 1, (1, 1, 1, 1), 4.0)
        x = x * demod[:, :, None, None] + self.noise_const * self.noise_strength
        return _lrelu(x + self.bias[None, :, None, None], self.clamp)


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, w_dim: int, clamp: Optional[float]):
        super().__init__()
        self.clamp = clamp
        self.affine = Dense(w_dim, in_ch)
        self.weight = nn.Parameter(torch.zeros(out_ch, in_ch, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.weight_gain = 1 / math.sqrt(in_ch)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = F.conv2d(x * styles[:, :, None, None], self.weight) + self.bias[None, :, None, None]
        return x.clamp(-self.clamp, self.clamp) if self.clamp is not None else x


class Block(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, w_dim: int, res: int, img_ch: int, clamp: Optional[float]):
        super().__init__()
        self.first, self.img_ch = in_ch == 0, img_ch
        self.register_buffer("resample_filter", torch.zeros(4, 4))
        if self.first:
            self.const = nn.Parameter(torch.zeros(out_ch, res, res))
        else:
            self.conv0 = Layer(in_ch, out_ch, w_dim, res, 2, clamp)
        self.conv1 = Layer(out_ch, out_ch, w_dim, res, 1, clamp)
        self.torgb = ToRGB(out_ch, img_ch, w_dim, clamp)
        self.num_conv = 1 if self.first else 2

    def forward(self, x: torch.Tensor, img: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first:
            x = self.const.unsqueeze(0).expand(w.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x, w)
            img = _fir(img, self.resample_filter, self.img_ch, 2, (2, 1, 2, 1), 4.0)  # upsample the skip image
        x = self.conv1(x, w)
        y = self.torgb(x, w)
        return x, (y if self.first else img + y)


class Synthesis(nn.Module):
    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int,
        channel_max: int,
        clamp: Optional[float],
    ):
        super().__init__()
        self.blocks = nn.ModuleList()
        in_ch = 0
        for i in range(2, int(math.log2(img_resolution)) + 1):
            out_ch = min(channel_base // 2**i, channel_max)
            self.blocks.append(Block(in_ch, out_ch, w_dim, 2**i, img_channels, clamp))
            in_ch = out_ch


class Generator(nn.Module):
    """z [N, z_dim] (and one-hot c [N, c_dim]) -> images [N, C, H, W] in about [-1, 1]."""

    def __init__(
        self,
        *,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_layers: int,
        channel_base: int,
        channel_max: int,
        conv_clamp: Optional[float],
        mapping_lr_mult: float,
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = z_dim, c_dim, img_resolution, img_channels
        self.mapping = Mapping(z_dim, c_dim, w_dim, mapping_layers, mapping_lr_mult)
        self.synthesis = Synthesis(w_dim, img_resolution, img_channels, channel_base, channel_max, conv_clamp)

    def one_hot(self, classes: list[int]) -> torch.Tensor:
        for k in classes:
            if not 0 <= k < self.c_dim:
                raise ExportError(f"class {k} is out of range: this generator has classes 0..{self.c_dim - 1}")
        return F.one_hot(torch.tensor(classes, dtype=torch.long), self.c_dim).float()

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1.0) -> torch.Tensor:
        w = self.mapping(z, c)
        if truncation_psi != 1.0:
            w = self.mapping.w_avg + truncation_psi * (w - self.mapping.w_avg)
        # One w for every layer (no style mixing): each block takes the same w.
        x = img = torch.zeros(0)
        for block in self.synthesis.blocks:
            x, img = block(x, img, w)
        return img


# ---------------------------------------------------------------------------------- loading
def resolve(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.is_dir():
        folder = path / "export" if (path / "export" / "generator.json").is_file() else path
        weights, meta = folder / "generator.safetensors", folder / "generator.json"
    else:
        weights, meta = path.with_suffix(".safetensors"), path.with_suffix(".json")
    for p in (weights, meta):
        if not p.is_file():
            raise ExportError(f"export file '{p}' does not exist: pass an export folder or its .safetensors")
    return weights, meta


def load_generator(path: str | Path, device: str = "cpu") -> tuple[Generator, dict]:
    weights, meta = resolve(path)
    try:
        description = json.loads(meta.read_text())
    except ValueError as exc:
        raise ExportError(f"'{meta}' is not valid JSON: {exc}") from None
    if description.get("format") != FORMAT:
        raise ExportError(f"'{meta}' is not a hiresgan generator description (format={description.get('format')!r})")
    if description.get("family") != "stylegan2":
        # A sound export of a family this one-file sampler does not carry: say so, not "damaged".
        raise ExportError(
            f"'{meta}' is a family {description.get('family')} export; this standalone sampler runs "
            "family stylegan2 only: sample it with `hiresgan sample` (hiresgan installed)"
        )
    if description.get("format_version", 0) > MAX_FORMAT_VERSION:
        raise ExportError(
            f"'{meta}' has format_version {description['format_version']}; this sampler reads up to "
            f"{MAX_FORMAT_VERSION}: take the sampler from the hiresgan that made the export"
        )
    G = Generator(**description["init_kwargs"])
    tensors = load_file(str(weights))
    expected = G.state_dict()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ExportError(
            f"'{weights}' does not match '{meta}': missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shapes {wrong[:5]}"
        )
    G.load_state_dict(tensors)
    return G.eval().requires_grad_(False).to(device), description


def latents(seeds: list[int], z_dim: int) -> torch.Tensor:
    """The latent of each seed, as `hiresgan sample` draws it (a CPU generator per seed)."""
    return torch.cat([torch.randn([1, z_dim], generator=torch.Generator().manual_seed(s)) for s in seeds])


# ------------------------------------------------------------------------------------- output
def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C], rounding as hiresgan does."""
    return (images.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def write_png(pixels: torch.Tensor, path: Path) -> None:
    """uint8 [H, W, C] (C 1 or 3) -> an 8-bit PNG, with zlib from the standard library only."""
    h, w, c = pixels.shape
    rows = b"".join(b"\x00" + bytes(pixels[y].flatten().tolist()) for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")
    )


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    return seeds


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Generate PNGs from a hiresgan export (torch + safetensors only).")
    parser.add_argument("export", help="export folder or its generator.safetensors")
    parser.add_argument("--seeds", default="0-7", help="e.g. 0-99 or 1,5,9")
    parser.add_argument("--class", dest="class_index", type=int, help="class index (conditional generators)")
    parser.add_argument("--truncation", type=float, default=1.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        G, _ = load_generator(args.export)
        seeds = parse_seeds(args.seeds)
        if G.c_dim and args.class_index is None:
            raise ExportError(f"this generator is conditional: pass --class K with K in 0..{G.c_dim - 1}")
        if not G.c_dim and args.class_index is not None:
            raise ExportError("--class was given but this generator is unconditional")
        c = G.one_hot([args.class_index] * len(seeds)) if G.c_dim else None
    except (ExportError, ValueError) as exc:
        print(f"hiresgan_sampler: error: {exc}", file=sys.stderr)
        return 2
    with torch.no_grad():
        pixels = to_uint8(G(latents(seeds, G.z_dim), c, args.truncation))
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = f"-class{args.class_index}" if args.class_index is not None else ""
    for seed, image in zip(seeds, pixels):
        write_png(image, args.out / f"seed{seed:04d}{suffix}.png")
    print(f"hiresgan_sampler: wrote {len(seeds)} image(s) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
