"""`hiresgan sample EXPORT --upscale IMAGES --out DIR`: every image of a folder upscaled by a
super-resolution export, written under the same file name (same format; JPEG at quality 95).

Each image is processed in overlapping tiles (`trainer.superres.upscale`), so memory stays flat
whatever its size. Conversions (grayscale, alpha, 16-bit) are those of `trainer.superres.images`;
an unreadable file or one too small for the model is reported by name and the folder goes on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from trainer.superres.degrade import bicubic_up
from trainer.superres.images import ImageReadError, list_images, read_image, write_image
from trainer.superres.upscale import upscale_image

DEFAULT_TILE = 128  # LR pixels per tile side
OVERLAP = 16  # LR pixels of context around each tile


class UpscaleError(ValueError):
    pass


def export_description(export: Path) -> dict:
    """The export's JSON (folder, .safetensors or .json), or {} when there is none to read."""
    from trainer.export import ExportError, resolve_export

    try:
        return json.loads(resolve_export(Path(export))[1].read_text())
    except (ExportError, OSError, ValueError):
        return {}


def is_superres_export(export: Path) -> bool:
    return export_description(export).get("family") == "esrgan"


def load_upscaler(export: Path, device: str = "cpu"):
    """(G, scale) of a super-resolution export; UpscaleError for anything else."""
    from trainer.export import ExportError, load_generator

    try:
        G, description = load_generator(Path(export), device=device)
    except (ExportError, ValueError) as exc:
        raise UpscaleError(f"cannot load the export: {exc}") from None
    if description.get("family") != "esrgan" or "scale" not in description:
        raise UpscaleError(
            f"'{export}' is a {description.get('family')!r} export, not a super-resolution model; "
            "--upscale needs an esrgan export (e.g. runs/sr_photos/export)"
        )
    return G, int(description["scale"])


def upscale_folder(export: Path, src: Path, out: Path, *, tile: int = DEFAULT_TILE, device: str = "cpu"):
    """Upscale every image of `src` into `out`; returns (written paths, per-file error lines)."""
    G, scale = load_upscaler(export, device)
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise UpscaleError(f"--upscale '{src}' is not a folder of images")
    images = list_images(src)
    if not images:
        raise UpscaleError(f"--upscale '{src}' holds no images (.png .jpg .jpeg .webp .bmp .tif)")
    out.mkdir(parents=True, exist_ok=True)
    written, errors = [], []
    for path in images:
        try:
            loaded = read_image(path)
            sr = upscale_image(G, loaded.rgb, scale=scale, tile=tile, overlap=OVERLAP, device=device)
            alpha = None
            if loaded.alpha is not None:
                alpha = bicubic_up(loaded.alpha[None], scale)[0]
            target = out / path.name
            write_image(target, sr, mode=loaded.mode, alpha=alpha)
            written.append(target)
        except (ImageReadError, ValueError, OSError) as exc:
            errors.append(f"{path.name}: {exc}")
    return written, errors


def run_upscale(args) -> int:
    """The CLI's --upscale job: 0 when every image was written, 1 when some failed, 2 when none could be."""
    if args.upscale is None:
        print(
            f"hiresgan sample: error: '{args.export}' is a super-resolution export; pass --upscale IMAGES "
            "(a folder) instead of --seeds",
            file=sys.stderr,
        )
        return 2
    try:
        written, errors = upscale_folder(
            args.export, args.upscale, args.out, tile=args.tile or DEFAULT_TILE, device=args.device
        )
    except UpscaleError as exc:
        print(f"hiresgan sample: error: {exc}", file=sys.stderr)
        return 2
    for line in errors:
        print(f"hiresgan sample: skipped {line}", file=sys.stderr)
    print(f"hiresgan: upscaled {len(written)} image(s) to {args.out}" + (f"; {len(errors)} skipped" if errors else ""))
    return 1 if errors else 0


__all__ = ["UpscaleError", "is_superres_export", "load_upscaler", "run_upscale", "upscale_folder"]
