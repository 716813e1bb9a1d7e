"""ESRGAN's network interpolation: one knob between the PSNR stage's faithful but smooth G and the
GAN stage's sharp but less faithful one, without retraining.

    python -m trainer.superres.interpolate PSNR_EXPORT GAN_EXPORT --alpha 0.8 --out EXPORT

writes an export whose weights are (1 - alpha) * PSNR + alpha * GAN (both stages must share the
architecture, as `sr.init_from` guarantees). alpha 0 is the PSNR stage, 1 the GAN stage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer.export import ExportError, export_generator, load_generator


def interpolate(psnr: Path, gan: Path, alpha: float, out: Path) -> Path:
    if not 0.0 <= alpha <= 1.0:
        raise ExportError(f"--alpha {alpha}: must be in [0, 1]")
    G_psnr, d_psnr = load_generator(psnr)
    G_gan, d_gan = load_generator(gan)
    if d_psnr["family"] != "esrgan" or d_gan["family"] != "esrgan" or d_psnr["init_kwargs"] != d_gan["init_kwargs"]:
        raise ExportError("both exports must be super-resolution (esrgan) exports of the same architecture")
    mixed = {k: (1 - alpha) * v + alpha * G_gan.state_dict()[k] for k, v in G_psnr.state_dict().items()}
    G_psnr.load_state_dict(mixed)
    own = {
        "format",
        "format_version",
        "family",
        "init_kwargs",
        "z_dim",
        "c_dim",
        "img_resolution",
        "img_channels",
        "class_names",
        "pixel_range",
        "training",
    }
    metadata = {k: v for k, v in d_gan.items() if k not in own}
    metadata["interpolation"] = {"alpha": alpha, "psnr": str(psnr), "gan": str(gan)}
    return export_generator(G_psnr, out, training=d_gan.get("training"), metadata=metadata)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.superres.interpolate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("psnr", type=Path)
    parser.add_argument("gan", type=Path)
    parser.add_argument("--alpha", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        path = interpolate(args.psnr, args.gan, args.alpha, args.out)
    except ExportError as exc:
        print(f"interpolate: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
