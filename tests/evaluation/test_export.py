"""Standalone sampler, TorchScript and ONNX exports: each must reproduce the eager generator."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from launch.cli import main
from trainer.export import ExportError, export_generator, load_generator
from trainer.sampling.latents import generate

ROOT = Path(__file__).resolve().parents[2]
SAMPLER = ROOT / "sampler" / "hiresgan_sampler.py"


def _eager(export, seeds, classes, psi):
    G, _ = load_generator(export)
    return torch.cat([generate(G, [s], k, truncation=psi) for s, k in zip(seeds, classes)])


def _latents(seeds, z_dim=16):
    from sampler.hiresgan_sampler import latents

    return latents(seeds, z_dim)


def test_standalone_sampler_matches_the_training_generator(tiny_export):
    from sampler.hiresgan_sampler import load_generator as load_standalone

    S, description = load_standalone(tiny_export)
    assert description["c_dim"] == 10
    for psi in (1.0, 0.6):
        with torch.no_grad():
            ours = S(_latents([0, 1, 2]), S.one_hot([3, 7, 0]), psi)
        torch.testing.assert_close(ours, _eager(tiny_export, [0, 1, 2], [3, 7, 0], psi), atol=1e-4, rtol=0)


_BLOCKER = """
import importlib.abc, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('trainer', 'kernels', 'launch', 'sampler', 'PIL', 'deepspeed', 'webdataset'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
path = sys.argv[1]
sys.argv = [path] + sys.argv[2:]
try:
    runpy.run_path(path, run_name='__main__')
except SystemExit as e:
    code = e.code
else:
    code = 0
assert not any(m.split('.')[0] in ('trainer', 'kernels', 'launch') for m in sys.modules), 'training code was imported'
sys.exit(code)
"""


def test_standalone_sampler_runs_without_training_code_and_reproduces_hiresgan_sample(tiny_export, tmp_path):
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    shutil.copy(SAMPLER, alone / "hiresgan_sampler.py")  # one file, away from the repository
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # -I: no PYTHONPATH, no user site, no script folder; the blocker refuses our packages outright.
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            _BLOCKER,
            str(alone / "hiresgan_sampler.py"),
            str(tiny_export),
            "--seeds",
            "0-3",
            "--class",
            "5",
            "--truncation",
            "0.7",
            "--out",
            str(tmp_path / "alone"),
        ],
        cwd=alone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        main(
            [
                "sample",
                str(tiny_export),
                "--seeds",
                "0-3",
                "--class",
                "5",
                "--truncation",
                "0.7",
                "--out",
                str(tmp_path / "ours"),
            ]
        )
        == 0
    )
    for seed in range(4):
        name = f"seed{seed:04d}-class5.png"
        a = np.asarray(Image.open(tmp_path / "alone" / name), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "ours" / name), dtype=np.int16)
        assert a.shape == b.shape == (32, 32)
        # Float results agree to ~1e-6; a pixel may still round to the neighbouring level.
        assert np.abs(a - b).max() <= 1 and (a == b).mean() > 0.99


def test_standalone_sampler_bad_class_is_a_clear_error(tiny_export):
    result = subprocess.run(
        [sys.executable, str(SAMPLER), str(tiny_export), "--class", "10", "--out", "/nonexistent"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "class 10 is out of range" in result.stderr


def test_torchscript_export_matches_eager_for_another_batch_size(tiny_export):
    assert main(["export", str(tiny_export), "--format", "torchscript", "--class", "4", "--truncation", "0.5"]) == 0
    path = tiny_export / "generator-class4-psi0.5.torchscript.pt"
    extra = {"generator.json": ""}
    graph = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["generator.json"])["graph_inputs"] == ["z"]
    seeds = [10, 11, 12]  # traced with 2 latents; 3 here checks the batch axis stayed free
    with torch.no_grad():
        torch.testing.assert_close(graph(_latents(seeds)), _eager(tiny_export, seeds, [4] * 3, 0.5), atol=1e-4, rtol=0)


def test_onnx_export_matches_eager_in_onnxruntime(tiny_export, tmp_path):
    ort = pytest.importorskip("onnxruntime")  # a test dependency (pyproject [test])
    out = tmp_path / "g.onnx"
    assert main(["export", str(tiny_export), "--format", "onnx", "--truncation", "0.8", "--out", str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["z", "class_index"]
    seeds, classes = [5, 6, 7], [0, 9, 2]
    images = session.run(None, {"z": _latents(seeds).numpy(), "class_index": np.array(classes, dtype=np.int64)})[0]
    expected = _eager(tiny_export, seeds, classes, 0.8).numpy()
    assert np.abs(images - expected).max() < 1e-4


def test_export_bad_input_names_the_problem_and_writes_nothing(tiny_export, capsys):
    before = sorted(p.name for p in tiny_export.iterdir())
    assert main(["export", str(tiny_export), "--format", "onnx", "--class", "12"]) == 2
    assert "--class 12 is out of range" in capsys.readouterr().err
    assert main(["export", str(tiny_export), "--format", "tflite"]) == 2
    assert "--format 'tflite'" in capsys.readouterr().err
    assert sorted(p.name for p in tiny_export.iterdir()) == before
    # A JSON that does not describe the tensors: refused by both loaders, naming both files.
    meta = tiny_export / "generator.json"
    description = json.loads(meta.read_text())
    description["init_kwargs"]["channel_max"] = 32
    meta.write_text(json.dumps(description))
    from sampler.hiresgan_sampler import ExportError as SamplerError
    from sampler.hiresgan_sampler import load_generator as load_standalone

    with pytest.raises(ExportError, match="does not match"):
        load_generator(tiny_export)
    with pytest.raises(SamplerError, match="does not match"):
        load_standalone(tiny_export)


def test_export_from_a_training_checkpoint(tiny_run):
    """A checkpoint folder in the trainer's format -> safetensors export -> same generator."""
    from evalkit import make_checkpoint

    step, G = make_checkpoint(tiny_run, 7, 56, seed=1)
    assert main(["export", str(tiny_run)]) == 0
    exported, description = load_generator(tiny_run / "exports" / "step-00000007")
    assert description["class_names"] == [str(d) for d in range(10)] and description["training"]["step"] == 7
    z, c = _latents([3]), torch.nn.functional.one_hot(torch.tensor([2]), 10).float()
    with torch.no_grad():
        torch.testing.assert_close(exported(z, c, noise_mode="const"), G.eval()(z, c, noise_mode="const"))
    (step / "ema.safetensors").write_bytes(b"damaged")
    assert main(["export", str(step)]) == 2


def test_unconditional_generator_standalone_and_torchscript(tmp_path):
    from evalkit import tiny_generator

    from sampler.hiresgan_sampler import load_generator as load_standalone

    G = tiny_generator(c_dim=0, channels=3, resolution=16)
    export_generator(G, tmp_path / "u")
    S, _ = load_standalone(tmp_path / "u")
    seeds = [0, 1, 2]
    expected = generate(G, seeds, None, truncation=0.9)
    with torch.no_grad():
        torch.testing.assert_close(S(_latents(seeds), None, 0.9), expected, atol=1e-4, rtol=0)
    assert main(["export", str(tmp_path / "u"), "--format", "torchscript", "--truncation", "0.9"]) == 0
    graph = torch.jit.load(str(tmp_path / "u" / "generator-psi0.9.torchscript.pt"))
    with torch.no_grad():
        torch.testing.assert_close(graph(_latents(seeds)), expected, atol=1e-4, rtol=0)
    assert main(["export", str(tmp_path / "u"), "--format", "onnx", "--class", "0"]) == 2
