"""The sr config section names bad keys; the quality gate's verdicts; the perceptual weights file."""

import hashlib

import pytest
import torch
from safetensors.torch import save_file

from trainer.config import ConfigError, load_config
from trainer.evaluation.superres_gate import verdicts
from trainer.superres.perceptual import PerceptualError, PerceptualLoss

CFG = "configs/sr_photos.yaml"


@pytest.mark.parametrize(
    "override, words",
    [
        ("sr.scale=3", "sr.scale"),
        ("sr.stage=wgan", "sr.stage"),
        ("sr.discriminator=stylegan", "sr.discriminator"),
        ("sr.discriminator=patch sr.patch_layers=5", "sr.patch_layers"),
        ("sr.gan_loss=hinge", "sr.gan_loss"),
        ("sr.blocks=0", "sr.blocks"),
        ("data.resolution=8", "data.resolution"),
        ("loss.r1_gamma=10", "loss.r1_gamma"),  # the PSNR stage: D never trains
        ("sr.init_from=/nonexistent/export", "sr.init_from"),
        ("sr.perceptual_weight=1", "sr.perceptual_weights"),
        ("sr.degradation=jpeg", "sr.degradation"),
    ],
)
def test_bad_sr_settings_name_the_key(override, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        load_config(CFG, override.split())


def test_shipped_sr_configs_load():
    for name in ("sr_photos", "sr_photos_gan", "esrgan_x4"):
        cfg = load_config(f"configs/{name}.yaml")
        assert cfg.model.family == "esrgan" and cfg.data.prepare == "photos"
    assert load_config("configs/esrgan_x4.yaml").sr.blocks == 23


def test_gate_verdicts():
    psnr = {"psnr_gain_db": 0.45}
    gan = {"psnr_gain_db": 0.1, "sr": {"psnr": 28.0, "sharpness": 0.55}, "bicubic": {"psnr": 27.9, "sharpness": 0.13}}
    assert all(ok for _, ok in verdicts(psnr, gan, min_gain=0.4, min_sharpness=0.5))
    bad = verdicts({"psnr_gain_db": 0.2}, {**gan, "psnr_gain_db": -0.1}, min_gain=0.4, min_sharpness=0.5)
    assert [ok for _, ok in bad] == [False, False, True]


def test_perceptual_loss_from_a_tiny_vgg_like_file(tmp_path):
    tensors = {
        "features.0.weight": torch.randn(4, 3, 3, 3),
        "features.0.bias": torch.zeros(4),
        "features.2.weight": torch.randn(6, 4, 3, 3),
        "features.2.bias": torch.zeros(6),
        "features.5.weight": torch.randn(6, 6, 3, 3),
        "features.5.bias": torch.zeros(6),
    }
    path = tmp_path / "vgg.safetensors"
    save_file(tensors, str(path))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    loss = PerceptualLoss.from_file(path, sha256=sha)
    kinds = [type(m).__name__ for m in loss.net]
    assert kinds == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Conv2d"]  # torchvision's layout
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert float(loss(x, x)) == 0.0
    y = (x + 0.3).requires_grad_(True)
    value = loss(y, x)
    value.backward()
    assert float(value.detach()) > 0 and y.grad is not None
    with pytest.raises(PerceptualError, match="SHA-256"):
        PerceptualLoss.from_file(path, sha256="b" * 64)
    save_file({"classifier.0.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    other_sha = hashlib.sha256((tmp_path / "other.safetensors").read_bytes()).hexdigest()
    with pytest.raises(PerceptualError, match="not a VGG features stack"):
        PerceptualLoss.from_file(tmp_path / "other.safetensors", sha256=other_sha)
