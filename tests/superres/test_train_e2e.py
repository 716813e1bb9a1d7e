"""Both stages through the real CLI, tiny: PSNR stage -> export -> GAN stage initialised from it
(U-Net D, vanilla loss, perceptual loss from a tiny random VGG-like file checked by SHA-256);
validation scores reach the JSONL; the export upscales a folder and is scored by `hiresgan eval`."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "data.resolution=32",
    "sr.blocks=1",
    "sr.features=8",
    "sr.growth=4",
    "sr.d_features=4",
    "sr.val_crop=32",
    "data.workers=0",
    "data.shuffle_buffer=8",
    "train.batch_size=4",
    "train.kimg=0.012",
    "train.sample_kimg=0.008",
    "train.checkpoint_kimg=0.008",
    "train.log_every=1",
    "metrics.port=0",
]


def cli(*args, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "launch", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def psnr_run(photo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    r = cli(
        "train",
        "configs/sr_photos.yaml",
        *TINY,
        f"data.urls={photo_root / 'train'}",
        f"run.out_dir={out}",
        "run.name=psnr",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return out / "psnr"


@pytest.fixture
def small_photos(photo_root, tmp_path):
    """Two small windows of validation photos (one grayscale): upscaling full photos is slow on CPU."""
    from PIL import Image

    folder = tmp_path / "small"
    folder.mkdir()
    Image.open(photo_root / "val" / "astronaut.png").crop((200, 100, 264, 148)).save(folder / "astronaut.png")
    Image.open(photo_root / "val" / "camera.png").crop((200, 100, 248, 148)).save(folder / "camera.jpg")
    return folder


def test_psnr_stage_trains_validates_and_exports(psnr_run, small_photos, tmp_path):
    recs = records(psnr_run)
    assert [k for k in recs[0]["losses"]] == ["G/l1"]
    validation = [r["validation"] for r in recs if "validation" in r]
    assert len(validation) == 2  # at the 8-image grid and at the end
    assert set(validation[-1]) == {
        "sr_psnr",
        "sr_ssim",
        "sr_sharpness",
        "bicubic_psnr",
        "bicubic_ssim",
        "bicubic_sharpness",
        "sr_psnr_gain_db",
    }
    description = json.loads((psnr_run / "export" / "generator.json").read_text())
    assert description["family"] == "esrgan" and description["scale"] == 4
    assert (psnr_run / "samples" / "latest.png").is_file()
    r = cli("sample", psnr_run / "export", "--upscale", small_photos, "--out", tmp_path / "up")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "up").iterdir()) == ["astronaut.png", "camera.jpg"]
    r = cli("eval", psnr_run / "export", "--data", small_photos, "--out", tmp_path / "report.json")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["images"] == 2 and "PSNR gain over bicubic" in r.stdout


def test_gan_stage_starts_from_the_psnr_export(psnr_run, photo_root, tmp_path):
    vgg = {
        "features.0.weight": torch.randn(4, 3, 3, 3),
        "features.0.bias": torch.zeros(4),
        "features.2.weight": torch.randn(8, 4, 3, 3),
        "features.2.bias": torch.zeros(8),
        "features.5.weight": torch.randn(8, 8, 3, 3),
        "features.5.bias": torch.zeros(8),
    }
    save_file(vgg, str(tmp_path / "vgg.safetensors"))
    sha = hashlib.sha256((tmp_path / "vgg.safetensors").read_bytes()).hexdigest()
    args = [
        "train",
        "configs/sr_photos_gan.yaml",
        *TINY,
        f"data.urls={photo_root / 'train'}",
        f"run.out_dir={tmp_path}",
        "run.name=gan",
        f"sr.init_from={psnr_run / 'export'}",
        "sr.discriminator=unet",
        "sr.gan_loss=vanilla",
        "sr.perceptual_weight=0.1",
        f"sr.perceptual_weights={tmp_path / 'vgg.safetensors'}",
    ]
    bad = cli(*args, "sr.perceptual_sha256=" + "a" * 64)
    assert bad.returncode != 0 and "sr.perceptual_sha256" in bad.stderr and "is it the file you meant" in bad.stderr
    r = cli(*args, f"sr.perceptual_sha256={sha}")
    assert r.returncode == 0, r.stderr[-3000:]
    losses = records(tmp_path / "gan")[0]["losses"]
    assert {"G/l1", "G/adversarial", "G/perceptual", "D/adversarial"} <= set(losses)
    description = json.loads((tmp_path / "gan" / "export" / "generator.json").read_text())
    assert description["sr_stage"] == "gan"
