"""Folder jobs of the image-to-image exports: translate a folder (pix2pix) and fill holes (inpaint).

    hiresgan sample EXPORT --translate IMAGES --out DIR
    hiresgan sample EXPORT --inpaint IMAGES --masks MASKS --out DIR

Each output keeps its input's file name (as PNG). Both networks are fully convolutional, so an
image of any size is processed whole: reflect-padded up to a multiple of the U-Net's
`size_multiple`, run, and cropped back (the padding of an inpainting mask counts as known).
`--tile N` processes big images in N x N tiles instead (less memory; pix2pix only, since an
inpainting hole must see its surroundings whole).

Bad files do not stop a folder: each gets one error line naming it (wrong channel count, a mask
missing or of another size, a mask all white or all black, an unreadable file), the rest is
written, and the CLI exits 1 after the folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from trainer.export import load_generator, resolve_export
from trainer.images import save_png, to_uint8

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


class FileError(ValueError):
    """One input file cannot be processed; the message names it."""


def export_family(export: Path) -> str:
    return json.loads(resolve_export(export)[1].read_text()).get("family", "")


def _images(folder: Path, flag: str) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{flag} '{folder}' is not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise ValueError(f"{flag} '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image(path: Path, channels: int, *, strict: bool) -> torch.Tensor:
    """uint8 [1, channels, H, W]. strict: refuse a file whose colour channels differ (an RGB
    edge map for a 1-channel model) rather than convert it."""
    try:
        with Image.open(path) as img:
            stored = 1 if img.mode in GRAY_MODES else 3
            if strict and stored != channels:
                raise FileError(
                    f"{path}: has {stored} colour channel(s) but the model reads {channels}; "
                    f"convert it to {'grayscale' if channels == 1 else 'RGB'} first"
                )
            pixels = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except OSError as exc:
        raise FileError(f"{path}: not a readable image ({exc})") from None
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None]


def to_signed(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.float() / 127.5 - 1


def read_mask(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """[1, 1, H, W] float, 1 = missing (white > 127), checked against its image's (H, W)."""
    try:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("L"), dtype=np.uint8)
    except OSError as exc:
        raise FileError(f"{path}: not a readable mask ({exc})") from None
    if pixels.shape != size:
        raise FileError(
            f"{path}: mask is {pixels.shape[1]}x{pixels.shape[0]} but its image is {size[1]}x{size[0]}; "
            "a mask must have its image's size"
        )
    missing = pixels > 127
    if missing.all():
        raise FileError(f"{path}: mask is all white (every pixel missing): nothing is left to fill from")
    if not missing.any():
        raise FileError(f"{path}: mask is all black (no pixel missing): nothing to fill")
    return torch.from_numpy(missing.astype(np.float32))[None, None]


def padded(x: torch.Tensor, multiple: int, mode: str = "reflect") -> tuple[torch.Tensor, tuple[int, int]]:
    """x padded right and bottom to sides that divide by `multiple`; returns it and the old (H, W)."""
    h, w = x.shape[2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        # reflect needs pad < side; replicate covers tiny images
        pad_mode = mode if mode != "reflect" or (ph < h and pw < w) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=pad_mode) if pad_mode != "constant" else F.pad(x, (0, pw, 0, ph))
    return x, (h, w)


@torch.no_grad()
def _translate_one(G, x: torch.Tensor, tile: int) -> torch.Tensor:
    if tile and max(x.shape[2:]) > tile:
        if tile % G.size_multiple:
            raise ValueError(f"--tile {tile}: must divide by {G.size_multiple} (this U-Net's size multiple)")
        out = torch.empty(1, G.img_channels, *x.shape[2:])
        for top in range(0, x.shape[2], tile):
            for left in range(0, x.shape[3], tile):
                part, (h, w) = padded(x[:, :, top : top + tile, left : left + tile], G.size_multiple)
                out[:, :, top : top + h, left : left + w] = G(part).float().cpu()[:, :, :h, :w]
        return out
    xp, (h, w) = padded(x, G.size_multiple)
    return G(xp).float().cpu()[:, :, :h, :w]


def translate_folder(
    export: Path, folder: Path, out_dir: Path, *, device: str = "cpu", tile: int = 0, class_index: Optional[int] = None
) -> tuple[list[Path], list[str]]:
    """pix2pix: translate every image of `folder` at its own size; (written paths, error lines)."""
    G, description = load_generator(export, device)
    if description["family"] != "pix2pix":
        raise ValueError(f"'{export}' is family {description['family']}, not pix2pix")
    c = None
    if G.c_dim:
        if class_index is None or not 0 <= class_index < G.c_dim:
            raise ValueError(f"this pix2pix export is class-conditional: pass --class K with K in 0..{G.c_dim - 1}")
        c = torch.nn.functional.one_hot(torch.tensor([class_index]), G.c_dim).float().to(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, errors = [], []
    for f in _images(folder, "--translate"):
        try:
            x = to_signed(read_image(f, G.in_channels, strict=True))
        except FileError as exc:
            errors.append(str(exc))
            continue
        y = _translate_one(_Bound(G, c), x, tile)
        path = out_dir / f"{f.stem}.png"
        save_png(to_uint8(y)[0], path)
        paths.append(path)
    return paths, errors


class _Bound:
    """G with its labels bound, exposing what tiling needs."""

    def __init__(self, G, c):
        self.G, self.c = G, c
        self.size_multiple, self.img_channels = G.size_multiple, G.img_channels

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.G(x.to(next(self.G.parameters()).device), self.c)


def _mask_for(image: Path, masks: Path) -> Path:
    found = [m for m in (masks / f"{image.stem}{s}" for s in IMAGE_SUFFIXES) if m.is_file()]
    if not found:
        raise FileError(f"{image}: no mask named '{image.stem}.png' in {masks}")
    return found[0]


@torch.no_grad()
def inpaint_folder(
    export: Path, folder: Path, masks: Path, out_dir: Path, *, device: str = "cpu"
) -> tuple[list[Path], list[str]]:
    """Fill the white pixels of each image's mask (same file name in `masks`); known pixels are
    written back unchanged. Returns (written paths, error lines)."""
    G, description = load_generator(export, device)
    if description["family"] != "inpaint":
        raise ValueError(
            f"--inpaint needs an inpainting export (family inpaint); '{export}' is {description['family']}"
        )
    masks = Path(masks)
    if not masks.is_dir():
        raise ValueError(f"--masks '{masks}' is not a folder of mask PNGs (white = missing)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, errors = [], []
    for f in _images(folder, "--inpaint"):
        try:
            pixels = read_image(f, G.img_channels, strict=False)
            m = read_mask(_mask_for(f, masks), tuple(pixels.shape[2:]))
        except FileError as exc:
            errors.append(str(exc))
            continue
        if G.fixed_size and tuple(pixels.shape[2:]) != (G.img_resolution, G.img_resolution):
            errors.append(
                f"{f}: is {pixels.shape[3]}x{pixels.shape[2]} but this co-modulated export fills "
                f"{G.img_resolution}x{G.img_resolution} images only; crop or resize it first"
            )
            continue
        xp, (h, w) = padded(to_signed(pixels), G.size_multiple)
        mp, _ = padded(m, G.size_multiple, mode="constant")  # padding is known (0)
        filled = to_uint8(G(xp.to(device), mp.to(device)).float().cpu()[:, :, :h, :w])[0]  # [H, W, C]
        known = (m[0, 0] < 0.5).numpy()
        filled[known] = pixels[0].permute(1, 2, 0).numpy()[known]  # the file's own bytes, no float round trip
        path = out_dir / f"{f.stem}.png"
        save_png(filled, path)
        paths.append(path)
    return paths, errors


def run_folder_job(args) -> int:
    """`hiresgan sample` with --translate (pix2pix export) or --inpaint: 0, or 1 when some files
    were refused (each named on stderr; the others are written)."""
    import sys

    if args.inpaint is not None:
        if args.masks is None:
            raise ValueError(
                "--inpaint needs --masks MASKS: a folder of mask PNGs named like the images (white = missing)"
            )
        paths, errors = inpaint_folder(args.export, args.inpaint, args.masks, args.out, device=args.device)
        done = f"inpainted {len(paths)} image(s)"
    else:
        paths, errors = translate_folder(
            args.export, args.translate, args.out, device=args.device, tile=args.tile, class_index=args.class_index
        )
        done = f"translated {len(paths)} image(s)"
    for line in errors:
        print(f"hiresgan: error: {line}", file=sys.stderr)
    print(f"hiresgan: {done} to {args.out}" + (f"; {len(errors)} file(s) refused (see above)" if errors else ""))
    return 1 if errors else 0
