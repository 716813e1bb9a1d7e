"""How well does an inpainting export fill a hole in photos it never trained on?

The held-out embedded photos (`trainer.data.photos.HELD_OUT`: astronaut, coffee, rocket, camera)
are cut to their centre 256x256 crop, a BOX x BOX hole is punched in the middle, and the export
fills it. The same holes are filled by scikit-image's biharmonic inpainting
(`skimage.restoration.inpaint_biharmonic`), the smooth classical baseline. Reported per photo
and on average:

- `psnr` / `ssim` of the whole 256x256 result against the real crop (torchmetrics, RGB in [0, 1]),
  for the export and for biharmonic, and `psnr_hole` over the hole's pixels alone;
- `detail`: mean |Laplacian| of the luma Y inside the hole (its 1-pixel rim left out), as a share
  of the real crop's: biharmonic fills are smooth (about 0.06), a plausible texture is near 1;
- `known_changed`: known pixels of the written result that differ from the input (must be 0).

    python -m trainer.evaluation.inpaint_gate runs/inpaint_photos/export [--out report.json] [--check]

`--check` exits 1 unless mean PSNR >= biharmonic's - MAX_PSNR_GAP, mean detail >= MIN_DETAIL and
no known pixel changed. `make quality-inpaint` trains configs/inpaint_photos.yaml and runs it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from trainer.data.masks import centre_box
from trainer.export import load_generator
from trainer.images import to_uint8

MAX_PSNR_GAP = 0.5  # dB below biharmonic
MIN_DETAIL = 0.5  # share of the real image's mean |Laplacian| inside the hole
CROP, BOX = 256, 96


def held_out_crops(size: int = CROP) -> dict[str, np.ndarray]:
    """name -> uint8 [size, size, 3]: the centre crop of each held-out photo (gray ones as RGB)."""
    from trainer.data.photos import HELD_OUT, load_photo

    crops = {}
    for name in HELD_OUT:
        photo = load_photo(name)
        photo = np.repeat(photo[:, :, None], 3, axis=2) if photo.ndim == 2 else photo[:, :, :3]
        top, left = (photo.shape[0] - size) // 2, (photo.shape[1] - size) // 2
        crops[name] = np.ascontiguousarray(photo[top : top + size, left : left + size])
    return crops


def folder_crops(folder: Path, size: int = CROP) -> dict[str, np.ndarray]:
    """file stem -> uint8 [size, size, 3]: the centre crop of every image in a folder (gray as RGB),
    e.g. a tuning set of photos that are neither trained on nor held out for this gate."""
    from PIL import Image

    from trainer.superres.images import IMAGE_SUFFIXES, list_images

    paths = list_images(folder)
    if not paths:
        raise ValueError(f"--data {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    crops = {}
    for path in paths:
        photo = np.asarray(Image.open(path).convert("RGB"))
        if min(photo.shape[:2]) < size:
            raise ValueError(f"--data: {path} is {photo.shape[1]}x{photo.shape[0]}, smaller than the {size}px crop")
        top, left = (photo.shape[0] - size) // 2, (photo.shape[1] - size) // 2
        crops[path.stem] = np.ascontiguousarray(photo[top : top + size, left : left + size])
    return crops


def luma(rgb: np.ndarray) -> np.ndarray:
    """uint8/float [H, W, 3] in [0, 255] -> Y (ITU-R BT.601, as in the super-resolution convention)."""
    rgb = rgb.astype(np.float64)
    return 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255


def hole_detail(rgb: np.ndarray, hole: np.ndarray) -> float:
    """Mean |Laplacian| of Y over the hole's interior (its outer 1-pixel rim touches known pixels)."""
    from scipy.ndimage import binary_erosion, laplace

    inner = binary_erosion(hole, iterations=1)
    return float(np.abs(laplace(luma(rgb)))[inner].mean())


def biharmonic(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    from skimage.restoration import inpaint_biharmonic

    filled = inpaint_biharmonic(image.astype(np.float64) / 255, hole, channel_axis=-1)
    return np.clip(np.round(filled * 255), 0, 255).astype(np.uint8)


def scores(result: np.ndarray, real: np.ndarray, hole: np.ndarray) -> dict:
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].double() / 255  # noqa: E731
    r, t = to_t(result), to_t(real)
    inside = torch.from_numpy(hole)[None, None].expand_as(r)
    return {
        "psnr": round(float(peak_signal_noise_ratio(r, t, data_range=1.0)), 3),
        "ssim": round(float(structural_similarity_index_measure(r, t, data_range=1.0)), 4),
        "psnr_hole": round(float(peak_signal_noise_ratio(r[inside], t[inside], data_range=1.0)), 3),
    }


@torch.no_grad()
def evaluate(export: Path, *, box: int = BOX, data: Optional[Path] = None) -> dict:
    G, description = load_generator(export)
    if description["family"] != "inpaint":
        raise ValueError(f"{export}: the inpainting gate needs an inpaint export, got family {description['family']}")
    mask = centre_box(CROP, box)  # [1, H, W], 255 = missing
    hole = mask[0] > 127
    m = torch.from_numpy(hole.astype(np.float32))[None, None]
    per_photo = {}
    for name, real in (folder_crops(data) if data else held_out_crops()).items():
        x = torch.from_numpy(real).permute(2, 0, 1)[None].float() / 127.5 - 1
        if G.img_channels == 1:
            x = x.mean(1, keepdim=True)
        out = to_uint8(G(x, m))[0]
        out = np.repeat(out, 3, axis=2) if out.shape[2] == 1 else out
        known_changed = int((out[~hole] != real[~hole]).any(axis=-1).sum())
        smooth = biharmonic(real, hole)
        real_detail = hole_detail(real, hole)
        per_photo[name] = {
            "model": {**scores(out, real, hole), "detail": round(hole_detail(out, hole) / real_detail, 4)},
            "biharmonic": {**scores(smooth, real, hole), "detail": round(hole_detail(smooth, hole) / real_detail, 4)},
            "known_changed": known_changed,
        }
    mean = lambda who, key: round(float(np.mean([p[who][key] for p in per_photo.values()])), 4)  # noqa: E731
    summary = {
        who: {key: mean(who, key) for key in ("psnr", "ssim", "psnr_hole", "detail")} for who in ("model", "biharmonic")
    }
    return {
        "export": str(export),
        "crop": CROP,
        "box": box,
        "photos": list(per_photo),
        **summary,
        "psnr_gap": round(summary["biharmonic"]["psnr"] - summary["model"]["psnr"], 3),
        "known_changed": sum(p["known_changed"] for p in per_photo.values()),
        "per_photo": per_photo,
    }


def quality_misses(report: dict) -> list[str]:
    misses = []
    if report["psnr_gap"] > MAX_PSNR_GAP:
        misses.append(
            f"PSNR {report['model']['psnr']:.2f} dB is {report['psnr_gap']:.2f} dB below biharmonic's "
            f"{report['biharmonic']['psnr']:.2f} (at most {MAX_PSNR_GAP} allowed)"
        )
    if report["model"]["detail"] < MIN_DETAIL:
        misses.append(f"detail in the hole {report['model']['detail']:.2f} of the real image's < {MIN_DETAIL}")
    if report["known_changed"]:
        misses.append(f"{report['known_changed']} known pixel(s) changed")
    return misses


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="export folder or run directory")
    parser.add_argument("--box", type=int, default=BOX, help=f"side of the centre hole (default {BOX})")
    parser.add_argument(
        "--data", type=Path, help="score the centre crops of this folder's images instead of the held-out photos"
    )
    parser.add_argument("--out", type=Path, help="write the report as JSON here too")
    parser.add_argument("--check", action="store_true", help="exit 1 below the quality bar (see the module doc)")
    args = parser.parse_args(argv)
    report = evaluate(args.export, box=args.box, data=args.data)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.check:
        misses = quality_misses(report)
        for miss in misses:
            print(f"inpaint_gate: below the quality bar: {miss}", file=sys.stderr)
        if misses:
            return 1
        print("inpaint_gate: quality bar met", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
