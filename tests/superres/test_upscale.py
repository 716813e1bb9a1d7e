"""Tiled upscaling equals whole-image upscaling; `hiresgan sample --upscale` on a folder with
every kind of awkward input: each gets its documented conversion or a named error, the rest go on."""

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.export import export_generator
from trainer.models.dcgan import DCGANGenerator
from trainer.models.esrgan import RRDBNet
from trainer.superres.sample import UpscaleError, run_upscale, upscale_folder
from trainer.superres.upscale import upscale_tensor


def _sr_export(path, blocks=0):
    torch.manual_seed(0)
    G = RRDBNet(img_resolution=16, scale=2, blocks=blocks, features=8, growth=4, residual="bicubic")
    for p in G.parameters():  # the bicubic path alone would hide tiling mistakes in the detail path
        p.data.normal_(0, 0.1)
    export_generator(G, path, metadata={"scale": 2, "task": "super-resolution"})
    return G


def test_tiles_equal_the_whole_image(tmp_path):
    G = _sr_export(tmp_path / "e").eval()
    lr = torch.rand(1, 3, 37, 50) * 2 - 1
    with torch.no_grad():
        whole = G(lr)
    tiled = upscale_tensor(G, lr, scale=2, tile=16, overlap=6)
    assert tiled.shape == whole.shape
    assert torch.allclose(tiled, whole, atol=1e-5)


def test_too_small_input_is_refused():
    G = RRDBNet(img_resolution=16, scale=2, blocks=0, features=8, growth=4)
    with pytest.raises(ValueError, match="at least 4 pixels"):
        upscale_tensor(G, torch.zeros(1, 3, 3, 40), scale=2)


def test_folder_with_awkward_inputs(tmp_path):
    _sr_export(tmp_path / "export")
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(src / "rgb.jpg")
    Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(src / "gray.png")
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(src / "alpha.png")
    Image.fromarray(rng.integers(0, 65536, (12, 12), dtype=np.uint16).astype(np.int32), "I").convert("I;16").save(
        src / "deep.png"
    )
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    Image.fromarray(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)).save(src / "tiny.png")
    written, errors = upscale_folder(tmp_path / "export", src, tmp_path / "out", tile=8)
    names = sorted(p.name for p in written)
    assert names == ["alpha.png", "deep.png", "gray.png", "rgb.jpg"]
    sizes = {p.name: Image.open(p).size for p in written}
    modes = {p.name: Image.open(p).mode for p in written}
    assert sizes == {"rgb.jpg": (60, 40), "gray.png": (48, 40), "alpha.png": (32, 32), "deep.png": (24, 24)}
    assert modes == {"rgb.jpg": "RGB", "gray.png": "L", "alpha.png": "RGBA", "deep.png": "L"}
    assert sorted(e.split(":")[0] for e in errors) == ["broken.png", "tiny.png"]
    assert "cannot read" in next(e for e in errors if e.startswith("broken")) and "at least 4" in errors[-1]
    args = argparse.Namespace(export=tmp_path / "export", upscale=src, out=tmp_path / "out2", tile=0, device="cpu")
    assert run_upscale(args) == 1  # some skipped, the rest written
    assert len(list((tmp_path / "out2").iterdir())) == 4


def test_a_non_superres_export_is_a_clear_error(tmp_path, capsys):
    G = DCGANGenerator(z_dim=8, c_dim=0, img_resolution=8, img_channels=1, channel_base=64, channel_max=8)
    export_generator(G, tmp_path / "dcgan")
    (tmp_path / "in").mkdir()
    with pytest.raises(UpscaleError, match="'dcgan' export, not a super-resolution model"):
        upscale_folder(tmp_path / "dcgan", tmp_path / "in", tmp_path / "out")
    args = argparse.Namespace(
        export=tmp_path / "dcgan", upscale=tmp_path / "in", out=tmp_path / "o", tile=0, device="cpu"
    )
    assert run_upscale(args) == 2
    assert "not a super-resolution model" in capsys.readouterr().err


def test_seeds_on_a_superres_export_point_to_upscale(tmp_path, capsys):
    _sr_export(tmp_path / "export")
    args = argparse.Namespace(export=tmp_path / "export", upscale=None, out=tmp_path / "o", tile=0, device="cpu")
    assert run_upscale(args) == 2
    assert "super-resolution export; pass --upscale IMAGES" in capsys.readouterr().err
