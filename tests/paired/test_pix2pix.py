"""pix2pix: paired data (decoder, transforms, edges2digits split, paired shard writer), the U-Net
and PatchGAN, config errors, `hiresgan sample --translate` on a folder with bad files, and (slow)
one rank training a tiny pix2pix through the real CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.config import ConfigError, load_config
from trainer.data.edges2digits import eval_indices, eval_pairs, train_indices, write_edges2digits_shards
from trainer.data.paired import PairedDecoder, canny_edges, derive_input
from trainer.data.reader import ErrorPolicy, read_shard
from trainer.export import export_generator
from trainer.models import build_networks
from trainer.models.pix2pix import Pix2PixGenerator, receptive_field

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/edges2digits.yaml"
TINY = ["pix2pix.filters=4", "pix2pix.d_filters=4"]


def hiresgan(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "launch", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def e2d_shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2d")
    write_edges2digits_shards(folder, shards=2)
    return folder


def in_process(capsys, *args):
    """The CLI in this process (no subprocess: these tests stay fast and unmarked)."""
    from types import SimpleNamespace

    from launch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=captured.out, stderr=captured.err)


def samples(folder):
    return [s for tar in sorted(folder.glob("shard-*.tar")) for s in read_shard(str(tar), ErrorPolicy("fail"))]


def test_edges2digits_trains_on_even_digits_only_and_evaluates_on_odd(e2d_shards):
    keys = sorted(int(s["__key__"]) for s in samples(e2d_shards))
    assert keys == train_indices(1797).tolist() and all(k % 2 == 0 for k in keys)
    assert set(keys).isdisjoint(eval_indices(1797).tolist())
    edges, digits, labels = eval_pairs()
    assert len(edges) == len(digits) == len(labels) == 898
    assert set(np.unique(edges)) <= {0, 255}  # white on black, 8-bit
    manifest = json.loads((e2d_shards / "manifest.json").read_text())
    assert manifest["samples"] == 899 and "odd-indexed are held out" in manifest["split"]


def test_edge_map_is_skimage_canny_of_the_digit():
    from skimage.feature import canny

    from trainer.data.digits import load_digit_arrays

    digits, _ = load_digit_arrays()
    edges, _, _ = eval_pairs()
    assert np.array_equal(edges[0] > 0, canny(digits[1] / 255, sigma=1))  # eval pair 0 is digit index 1


def test_decoder_reads_pairs_with_labels_and_refuses_an_rgb_edge_map(e2d_shards):
    sample = samples(e2d_shards)[0]
    out = PairedDecoder(32, 1, 1, labeled=True, num_classes=10)(sample, np.random.default_rng(0))
    assert out["image"].shape == out["input"].shape == (1, 32, 32) and 0 <= out["label"] < 10
    assert np.array_equal(out["input"][0], canny_edges(out["image"][0]))
    with pytest.raises(ValueError, match="has 1 channel.*reads 3"):
        PairedDecoder(32, 3, 3)(sample, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no 'a.png'"):
        PairedDecoder(32, 1, 1)({"__key__": "k", "__url__": "u", "png": b""}, np.random.default_rng(0))


@pytest.mark.parametrize("transform, channels", [("edges", 1), ("gray", 1), ("downscale", 3)])
def test_transforms_derive_inputs_of_the_right_shape(transform, channels):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    assert derive_input(image, transform, factor=4).shape == (channels, 16, 16)
    flat = np.full((3, 16, 16), 100, np.uint8)
    assert np.array_equal(derive_input(flat, "downscale", factor=4), flat)
    with pytest.raises(ValueError, match="valid choices"):
        derive_input(image, "sketch")


def test_unet_runs_at_other_sizes_and_patchgan_sees_70x70():
    assert receptive_field(3) == 70 and receptive_field(2) == 34
    G = Pix2PixGenerator(img_resolution=32, img_channels=3, in_channels=1, filters=4)
    assert G(torch.randn(2, 1, 32, 32)).shape == (2, 3, 32, 32)
    assert G(torch.randn(1, 1, 64, 96)).shape == (1, 3, 64, 96)  # fully convolutional
    cfg = load_config(CONFIG, TINY + ["data.num_classes=10", "model.conditional=true"])
    G, D = build_networks(cfg)
    x, c = torch.randn(2, 1, 32, 32), torch.eye(10)[:2]
    assert G.c_dim == 10 and not torch.allclose(G(x, c), G(x, torch.eye(10)[2:4]))
    assert D(G(x, c), c, cond=x).shape[0] == 2


@pytest.mark.parametrize(
    "override, key",
    [
        (["augment.kind=ada"], "augment.kind"),
        (["pix2pix.transform=sketch"], "pix2pix.transform"),
        (["pix2pix.patch_layers=5"], "pix2pix.patch_layers"),
        (["pix2pix.input_channels=2"], "pix2pix.input_channels"),
    ],
)
def test_bad_pix2pix_settings_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(CONFIG, override)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_paired_shards_from_two_folders_report_bad_pairs_and_write_the_rest(tmp_path, capsys):
    a, b = tmp_path / "edges", tmp_path / "photos"
    for i in range(3):
        _save(a / f"{i}.png", np.full((40, 40), 60 * i, np.uint8))
        _save(b / f"{i}.jpg", np.full((40, 40, 3), 50, np.uint8))
    _save(a / "lonely.png", np.zeros((40, 40), np.uint8))  # no target
    _save(b / "orphan.png", np.zeros((40, 40, 3), np.uint8))  # no input
    _save(a / "small.png", np.zeros((20, 20), np.uint8))  # sizes differ
    _save(b / "small.png", np.zeros((40, 40, 3), np.uint8))
    _save(a / "rgb.png", np.zeros((40, 40, 3), np.uint8))  # an RGB edge map
    _save(b / "rgb.png", np.zeros((40, 40, 3), np.uint8))
    result = in_process(
        capsys, "shards", a, tmp_path / "out", "--paired", b, "--resolution", "32", "--input-channels", "1"
    )
    assert result.returncode == 1, result.stderr
    for name in ("lonely.png", "orphan.png", "small.png", "rgb.png"):
        assert sum(name in line for line in result.stderr.splitlines()) == 1, result.stderr
    pairs = samples(tmp_path / "out")
    assert len(pairs) == 3 and all({"a.png", "b.png"} <= set(s) for s in pairs)
    out = PairedDecoder(32, 3, 1)(pairs[2], np.random.default_rng(0))
    assert out["input"].shape == (1, 32, 32) and out["image"].shape == (3, 32, 32) and out["input"].max() == 120


def test_translate_keeps_names_sizes_and_names_each_bad_file(tmp_path, capsys):
    G = Pix2PixGenerator(img_resolution=32, img_channels=1, in_channels=1, filters=4)
    export_generator(G.eval(), tmp_path / "export")
    folder = tmp_path / "in"
    _save(folder / "a.png", np.zeros((32, 32), np.uint8))
    _save(folder / "wide.png", np.zeros((40, 70), np.uint8))  # not a multiple of 32: padded, cropped back
    _save(folder / "rgb.png", np.zeros((32, 32, 3), np.uint8))
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    result = in_process(capsys, "sample", tmp_path / "export", "--translate", folder, "--out", out)
    assert result.returncode == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "wide.png"]
    assert Image.open(out / "wide.png").size == (70, 40)
    assert "rgb.png: has 3 colour channel(s) but the model reads 1" in result.stderr
    assert "broken.png: not a readable image" in result.stderr
    tiled = in_process(
        capsys, "sample", tmp_path / "export", "--translate", folder, "--tile", "32", "--out", tmp_path / "t"
    )
    assert Image.open(tmp_path / "t" / "wide.png").size == (70, 40), tiled.stderr


@pytest.mark.slow
def test_pix2pix_trains_exports_and_translates(tmp_path, e2d_shards):
    args = [
        "train",
        CONFIG,
        *TINY,
        "train.batch_size=4",
        "train.kimg=0.016",
        "train.log_every=2",
        "data.workers=0",
        "train.threads=1",
        "metrics.port=0",
        "loss.r1_gamma=1",
        "loss.d_reg_interval=2",
        f"data.urls={e2d_shards}",
        "data.prepare=none",
        f"run.out_dir={tmp_path}",
        "run.name=p2p",
    ]
    result = hiresgan(*args, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    records = [json.loads(line) for line in (tmp_path / "p2p" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 4
    assert {"G/adversarial", "G/l1", "D/adversarial", "D/r1"} <= set(records[-1]["losses"])
    grid = Image.open(tmp_path / "p2p" / "samples" / "latest.png")
    assert grid.size[1] == 3 * 32  # rows: input, output, target
    folder = tmp_path / "edges"
    edges, _, _ = eval_pairs()
    _save(folder / "d0.png", edges[0])
    translated = hiresgan("sample", tmp_path / "p2p" / "export", "--translate", folder, "--out", tmp_path / "out")
    assert translated.returncode == 0, translated.stderr
    assert (tmp_path / "out" / "d0.png").is_file()


@pytest.mark.parametrize("family", ["pix2pix", "inpaint", "inpaint-biharmonic"])
def test_onnx_and_torchscript_graphs_match_the_export_at_another_size(tmp_path, family):
    import onnxruntime

    from trainer.export import run_export
    from trainer.models.inpaint import InpaintGenerator

    G = (
        Pix2PixGenerator(img_resolution=32, img_channels=1, in_channels=1, filters=4)
        if family == "pix2pix"
        else InpaintGenerator(img_resolution=32, img_channels=3, filters=4, depth=2)
        if family == "inpaint"
        else InpaintGenerator(img_resolution=32, img_channels=3, filters=4, depth=3, prefill_equation="biharmonic")
    ).eval()  # small trace (depth 3: the biharmonic steps at 1/4 size are in the graph)
    export_generator(G, tmp_path / "export")
    x = torch.rand(2, G.init_kwargs.get("in_channels", 3), 64, 96) * 2 - 1
    inputs = {"images": x}
    if family.startswith("inpaint"):
        inputs["masks"] = torch.zeros(2, 1, 64, 96)
        inputs["masks"][:, :, 10:40, 20:70] = 1
    with torch.no_grad():
        expected = G(*inputs.values())
    session = onnxruntime.InferenceSession(str(run_export(tmp_path / "export", "onnx")))
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    assert np.abs(got - expected.numpy()).max() < 1e-4
    traced = torch.jit.load(str(run_export(tmp_path / "export", "torchscript")))
    assert torch.allclose(traced(*inputs.values()), expected, atol=1e-5)


def test_evaluation_during_training_is_refused_with_the_gate_named():
    with pytest.raises(ConfigError, match="eval.every_kimg.*docs/PAIRED.md"):
        load_config(CONFIG, ["eval.every_kimg=1"])
