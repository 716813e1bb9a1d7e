"""The one-file image-to-image sampler (torch + safetensors only) upscales esrgan exports exactly as
the trainer's tiled upscaler does, gray in gray out, bad files named and skipped."""

import numpy as np
import torch
from PIL import Image

from sampler.hiresgan_image2image import load_generator, main, upscale
from trainer.export import export_generator
from trainer.models.esrgan import RRDBNet
from trainer.superres.upscale import upscale_image


def test_standalone_upscale_equals_the_trainer(tmp_path, capsys):
    torch.manual_seed(0)
    G = RRDBNet(img_resolution=16, scale=2, blocks=1, features=8, growth=4, upsample="pixelshuffle", residual="bicubic")
    for p in G.parameters():
        p.data.normal_(0, 0.05)
    export_generator(G.eval(), tmp_path / "export", metadata={"scale": 2, "task": "super-resolution"})
    standalone, description = load_generator(tmp_path / "export")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 21, 34), dtype=np.uint8)
    ours = upscale(standalone, torch.from_numpy(image), tile=8, overlap=16).numpy()
    theirs = upscale_image(G, image, scale=2, tile=8, overlap=16)
    assert ours.shape == (3, 42, 68) and np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(image.transpose(1, 2, 0)).save(src / "rgb.png")
    Image.fromarray(image[0]).save(src / "gray.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nrubbish")
    assert main([str(tmp_path / "export"), "--upscale", str(src), "--out", str(tmp_path / "out")]) == 1
    assert "broken.png" in capsys.readouterr().err
    assert Image.open(tmp_path / "out" / "rgb.png").size == (68, 42)
    assert Image.open(tmp_path / "out" / "gray.png").mode == "L"
    assert main([str(tmp_path / "export"), "--out", str(tmp_path / "o2")]) == 2
    assert "--upscale DIR" in capsys.readouterr().err
