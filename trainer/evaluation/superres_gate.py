"""The super-resolution quality gate (`make quality-sr`): both stages against bicubic on the
held-out validation photos (whole images, BasicSR's conventions: Y channel, `scale` px shaved).

    python -m trainer.evaluation.superres_gate --psnr runs/quality-sr-psnr/export \\
        --gan runs/quality-sr-gan/export --data data/photos/val --check

Bars: the PSNR stage beats bicubic by >= `--min-gain` dB (0.4); the GAN stage keeps PSNR >= bicubic
and restores sharpness (mean |Laplacian| of Y, output over HR) to >= `--min-sharpness` (0.5; bicubic
x4 scores about 0.13). With --check, exit 1 below any bar.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trainer.evaluation.superres import evaluate_folder, format_report
from trainer.superres.sample import DEFAULT_TILE, OVERLAP, load_upscaler
from trainer.superres.upscale import upscale_image


def score_export(export: Path, data: Path, *, on: str = "y", device: str = "cpu") -> dict:
    G, scale = load_upscaler(export, device)
    return evaluate_folder(
        lambda lr: upscale_image(G, lr, scale=scale, tile=DEFAULT_TILE, overlap=OVERLAP, device=device),
        data,
        scale=scale,
        on=on,
    )


def verdicts(psnr: dict | None, gan: dict | None, *, min_gain: float, min_sharpness: float) -> list[tuple[str, bool]]:
    out = []
    if psnr is not None:
        out.append(
            (
                f"PSNR stage beats bicubic by >= {min_gain} dB on Y: {psnr['psnr_gain_db']:+.3f} dB",
                psnr["psnr_gain_db"] >= min_gain,
            )
        )
    if gan is not None:
        out.append(
            (
                f"GAN stage PSNR >= bicubic: {gan['sr']['psnr']:.3f} vs {gan['bicubic']['psnr']:.3f} dB",
                gan["psnr_gain_db"] >= 0,
            )
        )
        out.append(
            (
                f"GAN stage sharpness >= {min_sharpness}: {gan['sr']['sharpness']:.3f} "
                f"(bicubic {gan['bicubic']['sharpness']:.3f})",
                gan["sr"]["sharpness"] >= min_sharpness,
            )
        )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.evaluation.superres_gate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--psnr", type=Path, help="the PSNR stage's export")
    parser.add_argument("--gan", type=Path, help="the GAN stage's export")
    parser.add_argument("--data", type=Path, default=Path("data/photos/val"), help="folder of HR validation images")
    parser.add_argument("--min-gain", type=float, default=0.4)
    parser.add_argument("--min-sharpness", type=float, default=0.5)
    parser.add_argument("--check", action="store_true", help="exit 1 when a bar is missed")
    parser.add_argument("--out", type=Path, help="also write the reports and verdicts as JSON here")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.psnr is None and args.gan is None:
        parser.error("pass --psnr EXPORT and/or --gan EXPORT")
    reports = {}
    for stage in ("psnr", "gan"):
        export = getattr(args, stage)
        if export is not None:
            reports[stage] = score_export(export, args.data, device=args.device)
            print(f"[{stage} stage: {export}]\n{format_report(reports[stage])}\n")
            if not reports[stage]["images"]:
                print(f"superres_gate: no image of {args.data} could be scored", file=sys.stderr)
                return 1
    results = verdicts(
        reports.get("psnr"), reports.get("gan"), min_gain=args.min_gain, min_sharpness=args.min_sharpness
    )
    for text, ok in results:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        summary = {}  # headline figures at the top level (trainer.evaluation.quality_table reads them)
        if "psnr" in reports:
            summary["psnr_gain_db"] = reports["psnr"]["psnr_gain_db"]
        if "gan" in reports:
            summary.update(
                gan_psnr_gain_db=reports["gan"]["psnr_gain_db"], sharpness_ratio=reports["gan"]["sr"]["sharpness"]
            )
        args.out.write_text(
            json.dumps(
                {**summary, "reports": reports, "verdicts": [{"check": t, "passed": ok} for t, ok in results]}, indent=2
            )
        )
    return 1 if args.check and not all(ok for _, ok in results) else 0


if __name__ == "__main__":
    sys.exit(main())
