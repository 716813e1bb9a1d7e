"""Standalone sampler for hiresgan's image-to-image exports (pix2pix, inpaint, esrgan): torch and
safetensors only (plus the standard library: PNGs are read and written here). Copy this one file
next to your code; it never imports hiresgan's training code and never unpickles anything.

    python hiresgan_image2image.py runs/edges2digits/export --translate EDGES/ --out DIGITS/
    python hiresgan_image2image.py runs/inpaint_photos/export --inpaint PHOTOS/ --masks MASKS/ --out FILLED/
    python hiresgan_image2image.py runs/sr_photos_gan/export --upscale PHOTOS/ --out UPSCALED/

    from hiresgan_image2image import load_generator
    G, description = load_generator("runs/edges2digits/export")
    out = G(images)                 # pix2pix: [N, C_in, H, W] in [-1, 1] -> [N, C, H, W]
    out = G(images, masks)          # inpaint: masks [N, 1, H, W], 1 = missing -> composites
    out = upscale(G, image)         # esrgan: uint8 [C, h, w] -> [C, h*scale, w*scale], in tiles

Inputs are 8-bit PNGs (gray, RGB, with or without alpha; not palette or interlaced), each
processed at its own size (padded to the U-Net's size multiple, cropped back); outputs keep the
input's file name. Masks: same file names, white = missing. A bad file is reported and skipped.
Super-resolution (esrgan) upscales in overlapping tiles (flat memory); gray inputs are upscaled as
RGB and written gray; alpha is dropped.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

FORMAT, MAX_FORMAT_VERSION, FAMILIES = "hiresgan-generator", 1, ("pix2pix", "inpaint", "esrgan")
# Jacobi steps of the smooth prefill per pyramid level: many on the cheap coarse levels (where
# a large hole is mostly filled), few on the finest (as in the trainer's inpainting G).
COARSE_STEPS, FINE_STEPS = 32, 4
# The biharmonic prefill's damped Jacobi steps per level (as the trainer's; level 0 is full size).
BIHARMONIC_STEPS, BIHARMONIC_COARSE_STEPS, BIHARMONIC_OMEGA = {1: 0, 2: 64}, 256, 0.5
MIN_NORM_SIZE = 4  # as the trainer: no instance norm on levels smaller than this at the training size


class ExportError(ValueError):
    pass


# ------------------------------------------------------------------------------- networks
def _norm(channels: int, size: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True) if size >= MIN_NORM_SIZE else nn.Identity()


class UNet(nn.Module):
    """The trainer's U-Net, module for module (so the exported weights load by name)."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, filters: int, depth: int, c_dim: int):
        super().__init__()
        self.depth = depth
        ch = [filters * min(2**i, 8) for i in range(depth)]
        self.down = nn.ModuleList()
        for i in range(depth):
            conv = nn.Conv2d(in_channels if i == 0 else ch[i - 1], ch[i], 4, 2, 1)
            self.down.append(
                nn.Sequential(conv)
                if i == 0
                else nn.Sequential(nn.LeakyReLU(0.2), conv, _norm(ch[i], resolution >> (i + 1)))
            )
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            out_ch = out_channels if i == 0 else ch[i - 1]
            conv = nn.ConvTranspose2d(ch[i] if i == depth - 1 else 2 * ch[i], out_ch, 4, 2, 1)
            self.up.append(nn.Sequential(nn.ReLU(), conv, nn.Tanh() if i == 0 else _norm(out_ch, resolution >> i)))
        self.embed = nn.Linear(c_dim, ch[-1]) if c_dim else None

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        if self.embed is not None:
            x = x + self.embed(c)[:, :, None, None]
        for i, block in enumerate(self.up):
            x = block(x if i == 0 else torch.cat([x, skips[self.depth - 1 - i]], dim=1))
        return x


def _laplacian(u: torch.Tensor) -> torch.Tensor:
    p = F.pad(u, (1, 1, 1, 1), mode="replicate")
    return p[:, :, :-2, 1:-1] + p[:, :, 2:, 1:-1] + p[:, :, 1:-1, :-2] + p[:, :, 1:-1, 2:] - 4 * u


def smooth_fill(image: torch.Tensor, mask: torch.Tensor, levels: int, equation: str = "harmonic") -> torch.Tensor:
    """The trainer's smooth prefill (same arithmetic): a multigrid harmonic or biharmonic fill."""
    known = 1 - mask
    colors, weights = [image * known], [known]
    for _ in range(levels):
        colors.append(F.avg_pool2d(colors[-1], 2))
        weights.append(F.avg_pool2d(weights[-1], 2))
    mean = colors[0].sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp_min(1)  # [N, C, 1, 1]
    out = torch.where(weights[-1] > 0, colors[-1] / weights[-1].clamp_min(1e-6), mean)
    for level in reversed(range(levels)):
        color, weight = colors[level], weights[level]
        held = weight * (color / weight.clamp_min(1e-6))  # a cell's known share keeps its own average
        out = held + (1 - weight) * F.interpolate(out, size=color.shape[2:], mode="bilinear", align_corners=False)
        if equation == "biharmonic" and level > 0:
            for _ in range(BIHARMONIC_STEPS.get(level, BIHARMONIC_COARSE_STEPS)):
                out = held + (1 - weight) * (out - BIHARMONIC_OMEGA / 20 * _laplacian(_laplacian(out)))
            continue
        for _ in range(FINE_STEPS if level == 0 else COARSE_STEPS):
            p = F.pad(out, (1, 1, 1, 1), mode="replicate")
            neighbours = (p[:, :, :-2, 1:-1] + p[:, :, 2:, 1:-1] + p[:, :, 1:-1, :-2] + p[:, :, 1:-1, 2:]) * 0.25
            out = held + (1 - weight) * neighbours
    return out


class Generator(nn.Module):
    """pix2pix (G(images, c=None)) or inpaint (G(images, masks)), from an export's init_kwargs."""

    def __init__(
        self,
        family: str,
        *,
        img_resolution: int,
        img_channels: int,
        filters: int = 64,
        depth: int = 0,
        in_channels: Optional[int] = None,
        c_dim: int = 0,
        prefill: bool = False,
        prefill_equation: str = "harmonic",
    ):
        super().__init__()
        depth = depth or img_resolution.bit_length() - 1
        self.family, self.img_channels, self.c_dim, self.prefill = family, img_channels, c_dim, prefill
        if prefill_equation not in ("harmonic", "biharmonic"):
            raise ExportError(f"init_kwargs.prefill_equation {prefill_equation!r}: expected harmonic or biharmonic")
        self.prefill_equation = prefill_equation
        if family == "pix2pix":
            self.in_channels = in_channels
        else:
            self.in_channels = 2 * img_channels + 1 if prefill else img_channels + 1
        self.size_multiple = 2**depth
        self.net = UNet(self.in_channels, img_channels, img_resolution, filters, depth, c_dim)

    def forward(self, images: torch.Tensor, masks_or_labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.family == "pix2pix":
            return self.net(images, masks_or_labels)
        mask = masks_or_labels
        x = [images * (1 - mask), mask * 2 - 1]
        smooth = smooth_fill(images, mask, self.net.depth, self.prefill_equation) if self.prefill else None
        raw = self.net(torch.cat(x + [smooth] if self.prefill else x, dim=1))
        filled = (smooth + raw).clamp(-1, 1) if self.prefill else raw
        return torch.where(mask > 0.5, filled, images)


class DenseBlock(nn.Module):
    """esrgan: the trainer's dense block (five convs on the concatenation of all earlier outputs)."""

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
        return x + 0.2 * y


class RRDB(nn.Module):
    def __init__(self, features: int, growth: int):
        super().__init__()
        self.blocks = nn.Sequential(*(DenseBlock(features, growth) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.blocks(x)


class RRDBNet(nn.Module):
    """esrgan: the trainer's super-resolution G, module for module; [N, C, h, w] -> x scale."""

    family = "esrgan"

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
        self.img_channels, self.scale, self.upsample_mode, self.residual = img_channels, scale, upsample, residual
        self.conv_first = nn.Conv2d(img_channels, features, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(features, growth) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(features, features, 3, 1, 1)
        width = features if upsample == "nearest" else 4 * features
        self.ups = nn.ModuleList(nn.Conv2d(features, width, 3, 1, 1) for _ in range(scale.bit_length() - 1))
        self.conv_hr = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_last = nn.Conv2d(features, img_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in self.ups:
            if self.upsample_mode == "nearest":
                feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
            else:
                feat = F.leaky_relu(F.pixel_shuffle(conv(feat), 2), 0.2)
        out = self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))
        if self.residual == "bicubic":
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return out


@torch.no_grad()
def upscale(G: RRDBNet, image: torch.Tensor, tile: int = 128, overlap: int = 16) -> torch.Tensor:
    """uint8 [C, h, w] -> uint8 [C, h*scale, w*scale], `tile`-pixel cores with `overlap` pixels of context."""
    lr, s = image[None].float() / 127.5 - 1, G.scale
    _, c, h, w = lr.shape
    if min(h, w) < 4:
        raise ExportError(f"the input is {w}x{h}; the model needs at least 4 pixels on a side")
    out = torch.empty((1, c, h * s, w * s))
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0, px0, py1, px1 = max(y0 - overlap, 0), max(x0 - overlap, 0), min(y1 + overlap, h), min(x1 + overlap, w)
            sr = G(lr[:, :, py0:py1, px0:px1])
            oy, ox = (y0 - py0) * s, (x0 - px0) * s
            out[:, :, y0 * s : y1 * s, x0 * s : x1 * s] = sr[:, :, oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s]
    return ((out[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def load_generator(path: str | Path, device: str = "cpu") -> tuple[nn.Module, dict]:
    folder = Path(path)
    folder = folder.parent if folder.suffix in (".json", ".safetensors") else folder
    meta, weights = folder / "generator.json", folder / "generator.safetensors"
    if not meta.is_file() or not weights.is_file():
        raise ExportError(f"'{path}' is not an export folder (generator.json + generator.safetensors)")
    description = json.loads(meta.read_text())
    if description.get("format") != FORMAT or description.get("format_version", 0) > MAX_FORMAT_VERSION:
        raise ExportError(f"'{meta}' is not a hiresgan generator this sampler reads")
    if description.get("family") not in FAMILIES:
        raise ExportError(
            f"'{meta}' is family {description.get('family')!r}; this sampler reads "
            f"{', '.join(FAMILIES)} (hiresgan_sampler.py reads stylegan2)"
        )
    if description["family"] == "esrgan":
        G = RRDBNet(**description["init_kwargs"])
    else:
        kwargs = dict(description["init_kwargs"])
        if kwargs.pop("generator", "unet") != "unet":
            raise ExportError(
                f"'{meta}' uses the co-modulated inpainting generator, which this sampler does not "
                "implement; use `hiresgan sample --inpaint`"
            )
        for key in ("channel_base", "channel_max", "w_dim", "mapping_layers"):  # co-mod sizes, unused by the U-Net
            kwargs.pop(key, None)
        G = Generator(description["family"], **kwargs)
    G.load_state_dict(load_file(str(weights)))
    return G.eval().requires_grad_(False).to(device), description


# ------------------------------------------------------------------------------- PNG files
def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def read_png(path: Path) -> torch.Tensor:
    """An 8-bit PNG as uint8 [C, H, W] (C = 1 or 3; alpha dropped)."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ExportError(f"{path}: not a PNG file")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    if header is None:
        raise ExportError(f"{path}: PNG without a header")
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ExportError(f"{path}: only 8-bit gray/RGB(A) non-interlaced PNGs are read here; re-save it as such")
    raw, stride = zlib.decompress(b"".join(idat)), width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = row[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            row[i] = (row[i] + (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]) & 255
        rows.append(bytes(row))
        prev = row
    pixels = torch.frombuffer(bytearray(b"".join(rows)), dtype=torch.uint8).reshape(height, width, channels)
    return pixels[:, :, : 3 if channels >= 3 else 1].permute(2, 0, 1).contiguous()


def write_png(pixels: torch.Tensor, path: Path) -> None:
    """uint8 [C, H, W] (C = 1 or 3) -> an 8-bit PNG (no filtering)."""
    c, h, w = pixels.shape
    rows = pixels.permute(1, 2, 0).reshape(h, w * c)
    raw = b"".join(b"\x00" + bytes(row.tolist()) for row in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0)
    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    )


def _channels(pixels: torch.Tensor, channels: int) -> torch.Tensor:
    if pixels.shape[0] == channels:
        return pixels
    if channels == 3:
        return pixels.expand(3, -1, -1)
    weights = torch.tensor([0.299, 0.587, 0.114])[:, None, None]  # ITU-R 601 luma
    return (pixels.float() * weights).sum(0, keepdim=True).round().to(torch.uint8)


@torch.no_grad()
def process(
    G: Generator, image: torch.Tensor, mask: Optional[torch.Tensor] = None, c: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """uint8 [C_in, H, W] (+ a mask [1, H, W], 1 = missing) -> uint8 [C, H, W] at the same size."""
    h, w = image.shape[1:]
    ph, pw = -h % G.size_multiple, -w % G.size_multiple
    x = F.pad(image[None].float() / 127.5 - 1, (0, pw, 0, ph), mode="replicate")
    if G.family == "pix2pix":
        y = G(x, c)
    else:
        y = G(x, F.pad(mask[None].float(), (0, pw, 0, ph)))
    out = (y[0, :, :h, :w] * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    if mask is not None:
        out = torch.where(mask.bool(), out, image)  # known pixels: the file's own bytes
    return out


def _upscale_folder(G: RRDBNet, folder: Optional[Path], out: Path) -> int:
    if folder is None or not folder.is_dir():
        raise ExportError("esrgan exports need --upscale DIR (a folder of PNGs)")
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png"):
        try:
            image = read_png(path)
            sr = upscale(G, _channels(image, G.img_channels))
            write_png(_channels(sr, image.shape[0]), out / path.name)
        except (ExportError, OSError, zlib.error, struct.error) as exc:
            where = "" if str(path) in str(exc) else f"{path}: "
            print(f"hiresgan_image2image: error: {where}{exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="hiresgan image-to-image sampler (pix2pix, inpaint, esrgan)")
    parser.add_argument("export", type=Path)
    parser.add_argument("--translate", type=Path, help="pix2pix: folder of input PNGs")
    parser.add_argument("--inpaint", type=Path, help="inpaint: folder of PNGs with holes to fill")
    parser.add_argument("--masks", type=Path, help="with --inpaint: mask PNGs with the same names, white = missing")
    parser.add_argument("--class", dest="class_index", type=int, help="class-conditional pix2pix: the class")
    parser.add_argument("--upscale", type=Path, help="esrgan: folder of PNGs to upscale")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        G, description = load_generator(args.export)
        if G.family == "esrgan":
            return _upscale_folder(G, args.upscale, args.out)
        folder = args.translate if G.family == "pix2pix" else args.inpaint
        if folder is None or (G.family == "inpaint" and args.masks is None):
            raise ExportError("pix2pix exports need --translate DIR; inpaint exports --inpaint DIR --masks DIR")
        c = None
        if G.c_dim:
            if args.class_index is None or not 0 <= args.class_index < G.c_dim:
                raise ExportError(f"this export is class-conditional: pass --class K in 0..{G.c_dim - 1}")
            c = F.one_hot(torch.tensor([args.class_index]), G.c_dim).float()
    except ExportError as exc:
        print(f"hiresgan_image2image: error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png"):
        try:
            image = read_png(path)
            mask = None
            if G.family == "pix2pix":
                if image.shape[0] != G.in_channels:
                    raise ExportError(
                        f"{path}: has {image.shape[0]} colour channel(s) but the model reads {G.in_channels}"
                    )
            else:
                image = _channels(image, G.img_channels)
                mask = (_channels(read_png(args.masks / path.name), 1) > 127).to(torch.uint8)
                if mask.shape[1:] != image.shape[1:]:
                    raise ExportError(f"{args.masks / path.name}: mask size differs from its image's")
                if mask.all() or not mask.any():
                    raise ExportError(f"{args.masks / path.name}: mask is all {'white' if mask.all() else 'black'}")
            write_png(process(G, image, mask, c), args.out / path.name)
        except (ExportError, OSError, zlib.error, struct.error) as exc:
            print(f"hiresgan_image2image: error: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
