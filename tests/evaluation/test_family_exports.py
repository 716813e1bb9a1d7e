"""Exports of families other than stylegan2 through the shared tooling: what applies works (video
as a loop through Z, TorchScript and ONNX graphs of an MLP generator equal to eager sampling), what
cannot apply (style mixing without styles, the one-file stylegan2 sampler) is refused at once in
one line that names the family and the feature, never a traceback or a 'corrupt file' message."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from launch.cli import main
from trainer.config import load_config
from trainer.export import export_generator, load_generator
from trainer.models import build_networks
from trainer.sampling.latents import generate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mlp_export(tmp_path_factory):
    cfg = load_config("configs/mlp.yaml", ["model.mlp_hidden=32", "model.mlp_layers=2", "model.z_dim=8"])
    torch.manual_seed(0)
    G, _ = build_networks(cfg)
    folder = tmp_path_factory.mktemp("mlp") / "export"
    export_generator(G.eval(), folder)
    return folder


def _latents(seeds, z_dim=8):
    from sampler.hiresgan_sampler import latents

    return latents(seeds, z_dim)


def test_style_mixing_an_mlp_export_is_one_line_naming_family_and_feature(mlp_export, tmp_path, capsys):
    assert main(["sample", str(mlp_export), "--style-mix", "1,2", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "family mlp" in err[0] and "--style-mix" in err[0], err
    assert not (tmp_path / "s").exists()


def test_video_of_an_mlp_export_loops_through_z(mlp_export, tmp_path):
    gif = tmp_path / "loop.gif"
    assert (
        main(
            ["sample", str(mlp_export), "--video", str(gif), "--seeds", "0-2", "--frames", "4", "--out", str(tmp_path)]
        )
        == 0
    )
    with Image.open(gif) as image:
        assert image.n_frames == 3 * 4 and image.size == (32, 32)


def test_mlp_graphs_equal_eager_sampling(mlp_export, tmp_path):
    G, _ = load_generator(mlp_export)
    seeds = [3, 4, 5]
    expected = generate(G, seeds, None, truncation=1.0)
    assert main(["export", str(mlp_export), "--format", "torchscript", "--out", str(tmp_path / "g.pt")]) == 0
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(tmp_path / "g.pt"))(_latents(seeds)), expected, atol=1e-4, rtol=0)
    ort = pytest.importorskip("onnxruntime")
    assert main(["export", str(mlp_export), "--format", "onnx", "--out", str(tmp_path / "g.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    images = session.run(None, {"z": _latents(seeds).numpy()})[0]
    assert np.abs(images - expected.numpy()).max() < 1e-4


def test_the_standalone_sampler_says_which_family_it_cannot_run(mlp_export, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "sampler" / "hiresgan_sampler.py"), str(mlp_export), "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "family mlp" in result.stderr and "stylegan2 only" in result.stderr, result.stderr
