"""PSNR/SSIM on Y with the border shaved (torchmetrics), sharpness, folder scoring past bad files."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.evaluation.superres import evaluate_folder, laplacian_energy, rgb_to_y, score_pair
from trainer.superres.degrade import bicubic_up


def test_y_is_basicsr_convention():
    rgb = torch.tensor([[255.0, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0], [255, 255, 255]]).T.reshape(1, 3, 5, 1)
    y = rgb_to_y(rgb).flatten().tolist()
    assert y == pytest.approx([16 + 65.481, 16 + 128.553, 16 + 24.966, 16.0, 16 + 65.481 + 128.553 + 24.966])


def test_psnr_matches_the_closed_form_and_ignores_the_border():
    rng = np.random.default_rng(0)
    hr = rng.integers(40, 200, (3, 32, 32), dtype=np.uint8)
    out = hr.copy()
    out[:, 4:-4, 4:-4] = out[:, 4:-4, 4:-4] + 2  # every scored pixel off by 2 on each channel
    out[:, :4] = 0  # the shaved border does not count
    s = score_pair(out, hr, scale=4, on="rgb")
    assert s["psnr"] == pytest.approx(10 * math.log10(255**2 / 4), abs=1e-4)
    y = score_pair(out, hr, scale=4, on="y")  # Y moves by 2 * (65.481 + 128.553 + 24.966) / 255
    assert y["psnr"] == pytest.approx(10 * math.log10(255**2 / (2 * 219.0 / 255) ** 2), abs=1e-4)
    assert score_pair(hr, hr, scale=4)["ssim"] == pytest.approx(1.0)
    assert score_pair(hr, hr, scale=4)["sharpness"] == pytest.approx(1.0)


def test_bicubic_is_blurrier_than_the_real_image():
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    lr = np.asarray(Image.fromarray(hr.transpose(1, 2, 0)).resize((16, 16), Image.BICUBIC)).transpose(2, 0, 1)
    up = bicubic_up(lr, 4)
    assert laplacian_energy(up) < 0.5 * laplacian_energy(hr)
    assert score_pair(up, hr, scale=4)["sharpness"] < 0.5


def test_folder_scores_go_on_past_bad_files(tmp_path):
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (50, 66, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(tmp_path / "gray.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    rgba = rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "seethrough.png")
    report = evaluate_folder(lambda lr: bicubic_up(lr, 4), tmp_path, scale=4)
    assert report["images"] == 2 and [r["image"] for r in report["per_image"]] == ["a.png", "gray.png"]
    assert report["sr"]["psnr"] == pytest.approx(report["bicubic"]["psnr"])  # the same upscaler
    assert len(report["errors"]) == 2
    assert any(e.startswith("broken.png: ") and "cannot read" in e for e in report["errors"])
    assert any(e.startswith("seethrough.png: ") and "transparent" in e for e in report["errors"])
