"""Super-resolution scores: PSNR and SSIM (torchmetrics) and a no-reference sharpness ratio, on a
folder of HR images, for an SR model and for the bicubic baseline.

Conventions (BasicSR's, so numbers compare with papers): each HR image is cropped to sides that
divide by the scale, its LR copy is made by bicubic downscaling (`trainer.superres.degrade`),
`scale` pixels are shaved from every border of SR and HR before scoring, and with `on="y"` both
are scored on Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (RGB in [0, 255]), with data
range 255. SSIM: torchmetrics' Gaussian window (11 px, sigma 1.5), as in the paper's SSIM.
Sharpness: mean |Laplacian| of the output's Y over that of the HR image's Y (1: as sharp as the
real image; bicubic upscales of x4 are far below it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from trainer.superres.degrade import bicubic_down, bicubic_up, modcrop
from trainer.superres.images import ImageReadError, list_images, read_image

SCORES = ("psnr", "ssim", "sharpness")
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] RGB in [0, 255] -> [N, 1, H, W] Y in [16, 235] (ITU-R BT.601, BasicSR's)."""
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return 16.0 + (rgb * weights).sum(1, keepdim=True) / 255.0


def _prepare(image: np.ndarray, border: int, on: str) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(image)).double()[None]  # [1, C, H, W] in [0, 255]
    if on == "y":
        x = rgb_to_y(x)
    return x[:, :, border : x.shape[2] - border, border : x.shape[3] - border] if border else x


def laplacian_energy(image: np.ndarray, border: int = 0) -> float:
    """Mean |Laplacian| of the Y channel of uint8 [3, H, W]."""
    y = _prepare(image, border, "y")
    return float(F.conv2d(y, _LAPLACIAN.to(y.dtype)).abs().mean())


def score_pair(output: np.ndarray, hr: np.ndarray, *, scale: int, on: str = "y") -> dict[str, float]:
    """PSNR (dB), SSIM and sharpness of uint8 [3, H, W] `output` against `hr` (same shape)."""
    if output.shape != hr.shape:
        raise ValueError(f"output {output.shape} and HR {hr.shape} differ in shape")
    a, b = _prepare(output, scale, on), _prepare(hr, scale, on)
    psnr = peak_signal_noise_ratio(a, b, data_range=255.0)
    ssim = structural_similarity_index_measure(a, b, data_range=255.0, gaussian_kernel=True, sigma=1.5, kernel_size=11)
    reference = laplacian_energy(hr, scale)
    sharp = laplacian_energy(output, scale) / reference if reference > 0 else float("nan")
    return {"psnr": float(psnr), "ssim": float(ssim), "sharpness": sharp}


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in SCORES} if rows else {}


def center_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The centre side x side window of [C, H, W] (the whole of a smaller side)."""
    _, h, w = image.shape
    top, left = max((h - side) // 2, 0), max((w - side) // 2, 0)
    return image[:, top : top + side, left : left + side]


def evaluate_folder(
    upscale: Callable[[np.ndarray], np.ndarray],
    folder: Path,
    *,
    scale: int,
    on: str = "y",
    limit: Optional[int] = None,
    crop: int = 0,
) -> dict:
    """Score `upscale` (uint8 LR [3, h, w] -> uint8 [3, h*scale, w*scale]) and bicubic on every
    image of `folder` (its centre `crop` x `crop` window when crop > 0: cheaper scoring during
    training). A file that cannot be read or scored is listed under "errors" and the rest go on;
    the means are over the scored images."""
    per_image, errors = [], []
    for path in list_images(folder)[:limit]:
        try:
            loaded = read_image(path)
            if loaded.alpha is not None and loaded.alpha.min() < 255:
                raise ValueError("has transparent pixels: no ground truth under them; flatten it first")
            hr = modcrop(center_crop(loaded.rgb, crop) if crop else loaded.rgb, scale)
            lr = bicubic_down(hr, scale)
            model = score_pair(upscale(lr), hr, scale=scale, on=on)
            baseline = score_pair(bicubic_up(lr, scale), hr, scale=scale, on=on)
        except (ImageReadError, ValueError) as exc:
            errors.append(f"{path.name}: {exc}")
            continue
        per_image.append({"image": path.name, "sr": model, "bicubic": baseline})
    report = {
        "images": len(per_image),
        "scale": scale,
        "on": on,
        "crop": crop,
        "sr": _mean([r["sr"] for r in per_image]),
        "bicubic": _mean([r["bicubic"] for r in per_image]),
        "per_image": per_image,
        "errors": errors,
    }
    if per_image:
        report["psnr_gain_db"] = report["sr"]["psnr"] - report["bicubic"]["psnr"]
    return report


def format_report(report: dict) -> str:
    lines = [
        f"super-resolution x{report['scale']} on {report['images']} image(s), PSNR/SSIM on "
        f"{'Y' if report['on'] == 'y' else 'RGB'} ({report['scale']} px border shaved)",
        f"{'':10s} {'PSNR dB':>8s} {'SSIM':>7s} {'sharpness':>10s}",
    ]
    for name in ("sr", "bicubic"):
        row = report.get(name) or {}
        if row:
            lines.append(f"{name:10s} {row['psnr']:8.3f} {row['ssim']:7.4f} {row['sharpness']:10.3f}")
    if "psnr_gain_db" in report:
        lines.append(f"PSNR gain over bicubic: {report['psnr_gain_db']:+.3f} dB")
    lines += [f"skipped {e}" for e in report["errors"]]
    return "\n".join(lines)


def run_eval(export: Path, data: str, *, on: str = "y", out: Optional[Path] = None, device: str = "cpu") -> int:
    """`hiresgan eval SR_EXPORT --data FOLDER`: the report on stdout (and as JSON in `out`).
    0 when every image was scored, 1 when some were skipped, 2 when nothing could be scored."""
    import json
    import sys

    from trainer.superres.sample import DEFAULT_TILE, OVERLAP, UpscaleError, load_upscaler
    from trainer.superres.upscale import upscale_image

    folder = Path(data)
    if not folder.is_dir():
        print(
            f"hiresgan eval: error: --data '{data}' must be a folder of HR images for a super-resolution export",
            file=sys.stderr,
        )
        return 2
    try:
        G, scale = load_upscaler(export, device)
    except UpscaleError as exc:
        print(f"hiresgan eval: error: {exc}", file=sys.stderr)
        return 2
    report = evaluate_folder(
        lambda lr: upscale_image(G, lr, scale=scale, tile=DEFAULT_TILE, overlap=OVERLAP, device=device),
        folder,
        scale=scale,
        on=on,
    )
    print(format_report(report))
    if out is not None:
        Path(out).write_text(json.dumps(report, indent=2))
    if not report["images"]:
        return 2
    return 1 if report["errors"] else 0
