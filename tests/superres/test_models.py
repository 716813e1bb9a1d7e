"""RRDBNet and the three discriminators: shapes, the bicubic start, exports, init_from."""

import pytest
import torch
import torch.nn.functional as F

from trainer.export import export_generator, load_generator
from trainer.models.esrgan import PatchCritic, RRDBNet, VGGDiscriminator, load_into
from trainer.models.unet_discriminator import UNetDiscriminator


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("upsample", ["nearest", "pixelshuffle"])
def test_generator_upscales_any_size(scale, upsample):
    G = RRDBNet(img_resolution=32, scale=scale, blocks=1, features=8, growth=4, upsample=upsample)
    out = G(torch.randn(2, 3, 9, 13))
    assert out.shape == (2, 3, 9 * scale, 13 * scale)


def test_bicubic_residual_starts_at_bicubic():
    G = RRDBNet(img_resolution=32, scale=4, blocks=1, features=8, growth=4, residual="bicubic")
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    assert torch.allclose(G(x), F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False))


def test_paper_size_parameter_count():
    G = RRDBNet(img_resolution=128, scale=4)  # 23 blocks, 64 features, growth 32: ESRGAN's 16.7M
    assert sum(p.numel() for p in G.parameters()) == pytest.approx(16.7e6, rel=0.01)


def test_discriminators():
    img = torch.randn(2, 3, 32, 32)
    assert VGGDiscriminator(img_resolution=32, features=8)(img).shape == (2, 1)
    unet = UNetDiscriminator(img_resolution=32, features=8)
    assert unet(img).shape == (2, 1, 32, 32)  # one logit per pixel
    assert sum(1 for name, _ in unet.named_parameters() if name.endswith("weight_orig")) == 8  # spectral norm
    # 32 -> 16 -> 8 (two stride-2 levels) -> 7 -> 6: 36 logits, each seeing a 34x34 patch
    assert PatchCritic(img_resolution=32, features=8, layers=2)(img).shape == (2, 36)


def test_export_round_trip_and_init_from(tmp_path):
    G = RRDBNet(img_resolution=32, scale=4, blocks=1, features=8, growth=4)
    export_generator(G, tmp_path / "export", metadata={"scale": 4, "task": "super-resolution"})
    H, description = load_generator(tmp_path / "export")
    assert description["family"] == "esrgan" and description["scale"] == 4 and description["z_dim"] == 0
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(G(x), H(x))
    fresh = RRDBNet(img_resolution=32, scale=4, blocks=1, features=8, growth=4)
    load_into(fresh, str(tmp_path))  # a run directory holding export/ works too
    assert torch.equal(fresh(x), G(x))
    with pytest.raises(ValueError, match="sr.init_from.*does not fit"):
        load_into(RRDBNet(img_resolution=32, scale=4, blocks=2, features=8, growth=4), str(tmp_path / "export"))
    with pytest.raises(ValueError, match="sr.init_from.*no generator.safetensors"):
        (tmp_path / "empty").mkdir()
        load_into(fresh, str(tmp_path / "empty"))


def test_network_interpolation(tmp_path):
    from trainer.superres.interpolate import interpolate

    a = RRDBNet(img_resolution=32, scale=4, blocks=1, features=8, growth=4)
    b = RRDBNet(img_resolution=32, scale=4, blocks=1, features=8, growth=4)
    export_generator(a, tmp_path / "a", metadata={"scale": 4})
    export_generator(b, tmp_path / "b", metadata={"scale": 4, "sr_stage": "gan"})
    interpolate(tmp_path / "a", tmp_path / "b", 0.25, tmp_path / "mix")
    G, description = load_generator(tmp_path / "mix")
    w = "conv_first.weight"
    assert torch.allclose(G.state_dict()[w], 0.75 * a.state_dict()[w] + 0.25 * b.state_dict()[w])
    assert description["interpolation"]["alpha"] == 0.25 and description["scale"] == 4
    export_generator(RRDBNet(img_resolution=32, scale=4, blocks=2, features=8, growth=4), tmp_path / "c")
    with pytest.raises(ValueError, match="same architecture"):
        interpolate(tmp_path / "a", tmp_path / "c", 0.5, tmp_path / "bad")
