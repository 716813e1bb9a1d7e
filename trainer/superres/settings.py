"""The `sr` config section (family esrgan, docs/SUPERRES.md) and its validation.

Kept out of trainer/config/schema.py (which only holds the field and the call) so the section reads in
one place; no torch import here, the config must load fast.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SCALES = (2, 4, 8)
STAGES = ("psnr", "gan")
DISCRIMINATORS = ("vgg", "unet", "patch")
GAN_LOSSES = ("ragan", "vanilla")
VAL_METRICS_ON = ("y", "rgb")


@dataclass
class SuperResConfig:
    """Family esrgan: G maps the LR copy of each `data.resolution` HR crop to the HR crop."""

    scale: int = 4  # upscaling factor: 2, 4 or 8 (data.resolution must divide by it)
    degradation: str = "bicubic"  # how LR is made from HR in the stream: bicubic, or realesrgan (second order)
    blocks: int = 23  # RRDB blocks of G (the paper: 23)
    features: int = 64  # G's feature channels (the paper: 64)
    growth: int = 32  # channels each dense-block conv adds (the paper: 32)
    upsample: str = "nearest"  # G's x2 steps: nearest (+conv, ESRGAN) or pixelshuffle (sub-pixel conv)
    residual: str = "none"  # none (the paper) or bicubic: G adds the bicubic upscale of its input (fast start)
    stage: str = "psnr"  # psnr: pixel L1 only (D idle); gan: L1 + adversarial (+ perceptual)
    init_from: str = ""  # a PSNR-stage export (folder or .safetensors) loaded into G before training
    discriminator: str = "vgg"  # gan stage: vgg (one logit per image), unet (spectral norm, one per pixel)
    # or patch (pix2pix's PatchGAN, one logit per patch; pair it with loss.r1_gamma > 0)
    d_features: int = 64  # D's first-level channels
    patch_layers: int = 2  # discriminator=patch: stride-2 levels; 2 -> each logit sees a 34x34 patch
    gan_loss: str = "ragan"  # gan stage: ragan (relativistic average, ESRGAN) or vanilla (Real-ESRGAN)
    l1_weight: float = 1.0  # weight of |G(lr) - hr|_1 (the paper's GAN stage: 0.01 beside perceptual 1)
    gan_weight: float = 0.005  # gan stage: weight of G's adversarial loss (the paper: 0.005)
    perceptual_weight: float = 0.0  # weight of the VGG feature loss (0: off; needs perceptual_weights)
    perceptual_weights: str = ""  # safetensors of a VGG19 'features' stack (docs/SUPERRES.md); never downloaded
    perceptual_sha256: str = ""  # the expected SHA-256 of perceptual_weights
    val: str = ""  # folder of HR validation images scored at each sample grid ("": the photos' val/ folder)
    val_metrics_on: str = "y"  # y: PSNR/SSIM on BasicSR's Y channel; rgb: on RGB (both crop `scale` px)
    val_crop: int = 0  # score the centre val_crop x val_crop of each validation image (0: whole images)
    tile: int = 128  # LR tile side for validation and sampling (memory stays flat on large images)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def validate_superres(cfg, fail: Callable[[str, str], None]) -> None:
    """Always: ranges and choices. Family esrgan: shapes, loss keys it does not read, weights file."""
    s = cfg.sr
    choices = {
        "sr.scale": (s.scale, SCALES),
        "sr.degradation": (s.degradation, ("bicubic", "realesrgan")),
        "sr.upsample": (s.upsample, ("nearest", "pixelshuffle")),
        "sr.residual": (s.residual, ("none", "bicubic")),
        "sr.stage": (s.stage, STAGES),
        "sr.discriminator": (s.discriminator, DISCRIMINATORS),
        "sr.gan_loss": (s.gan_loss, GAN_LOSSES),
        "sr.val_metrics_on": (s.val_metrics_on, VAL_METRICS_ON),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            fail(key, f"got {value!r}; valid choices: {', '.join(map(str, allowed))}")
    for key in ("blocks", "features", "growth", "d_features", "patch_layers", "tile"):
        if getattr(s, key) < 1:
            fail(f"sr.{key}", f"got {getattr(s, key)}; must be >= 1")
    for key in ("l1_weight", "gan_weight", "perceptual_weight", "val_crop"):
        if getattr(s, key) < 0:
            fail(f"sr.{key}", f"got {getattr(s, key)}; must be >= 0")
    if cfg.model.family != "esrgan":
        return
    if cfg.data.resolution % s.scale or cfg.data.resolution // s.scale < 4:
        fail(
            "data.resolution",
            f"got {cfg.data.resolution}; the HR crop must divide by sr.scale={s.scale} into at least 4 LR pixels",
        )
    if s.discriminator == "unet" and cfg.data.resolution < 16:
        fail("data.resolution", f"got {cfg.data.resolution}; the U-Net D needs HR crops of at least 16")
    if s.discriminator == "patch" and cfg.data.resolution >> s.patch_layers < 3:
        fail(
            "sr.patch_layers",
            f"got {s.patch_layers}; {s.patch_layers} halvings of a {cfg.data.resolution}px crop leave under "
            "3 pixels, too few for the patch D's last two 4x4 convs: lower it or raise data.resolution",
        )
    if cfg.c_dim:
        fail("model.conditional", "is true; model.family=esrgan takes no labels: set model.conditional=false")
    if cfg.augment.kind != "none":
        fail("augment.kind", "is not applied by model.family=esrgan; set augment.kind=none")
    if cfg.loss.r1_gamma > 0 and s.stage != "gan":
        fail("loss.r1_gamma", "regularises D, which only trains in sr.stage=gan; set loss.r1_gamma=0")
    if s.init_from and not Path(s.init_from).expanduser().exists():
        fail("sr.init_from", f"'{s.init_from}' does not exist; pass a PSNR-stage export folder or its .safetensors")
    if s.perceptual_weight > 0:
        if not s.perceptual_weights:
            fail(
                "sr.perceptual_weights",
                "is empty but sr.perceptual_weight > 0 needs a VGG19 features safetensors "
                "file (docs/SUPERRES.md); or set sr.perceptual_weight=0",
            )
        weights = Path(s.perceptual_weights).expanduser()
        if not weights.is_file():
            fail("sr.perceptual_weights", f"'{weights}' does not exist")
        sha = s.perceptual_sha256.lower()
        if len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha):
            fail(
                "sr.perceptual_sha256",
                f"got {s.perceptual_sha256!r}; must be the 64-hex-digit SHA-256 of sr.perceptual_weights",
            )
        actual = _sha256(weights)
        if actual != sha:
            fail("sr.perceptual_sha256", f"'{weights}' has SHA-256 {actual}, not {sha}; is it the file you meant?")
