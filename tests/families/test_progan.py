"""ProGAN: the growth schedule, fade-in of G, D and the reals, stage in exports, and (slow) an
exact resume in the middle of a fade-in on real ranks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainer.config import ConfigError, load_config
from trainer.export import export_generator, load_generator
from trainer.models import build_networks
from trainer.models.progan import stage_at
from trainer.recipes.progan import fade_reals

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.channel_base=128", "model.channel_max=16", "model.z_dim=8"]


def test_schedule_stable_then_fade_then_stable_per_level():
    s = lambda k: stage_at(k, max_level=3, start_level=0, stable_kimg=2, fade_kimg=4)  # noqa: E731
    assert s(0) == (0, 1.0) and s(1.9) == (0, 1.0)
    assert s(2) == (1, 0.0) and s(3) == (1, 0.25) and s(6) == (1, 1.0) and s(7.9) == (1, 1.0)
    assert s(8) == (2, 0.0) and s(14) == (3, 0.0) and s(18) == (3, 1.0) and s(1000) == (3, 1.0)
    assert stage_at(5, max_level=3, start_level=2, stable_kimg=2, fade_kimg=0) == (3, 1.0)


def test_generator_grows_and_fades():
    G, D = build_networks(load_config(ROOT / "configs/progan.yaml", TINY))
    z = torch.randn(2, 8)
    G.set_stage(0, 1.0)
    img = G(z, None)
    assert img.shape == (2, 1, 32, 32)
    assert torch.equal(img, img[:, :, ::8, ::8].repeat_interleave(8, 2).repeat_interleave(8, 3))  # 4x4 content
    G.set_stage(1, 0.0)
    torch.testing.assert_close(G(z, None), img)  # a new level starts invisible
    G.set_stage(1, 0.5)
    half = G(z, None)
    G.set_stage(1, 1.0)
    full = G(z, None)
    torch.testing.assert_close(half, (img + full) / 2)  # linear fade
    for level, alpha in ((0, 1.0), (2, 0.3), (3, 1.0)):
        D.set_stage(level, alpha)
        assert D(img, None).shape == (2, 1)


def test_fade_reals_matches_the_generator_side():
    real = torch.rand(2, 1, 32, 32)
    low = fade_reals(real, 0, 1.0)
    assert torch.equal(low[:, :, :4, :4], low[:, :, :1, :1].expand(-1, -1, 4, 4))
    torch.testing.assert_close(fade_reals(real, 1, 0.0), low)
    torch.testing.assert_close(fade_reals(real, 3, 1.0), real)


def test_export_remembers_the_stage(tmp_path):
    G, _ = build_networks(load_config(ROOT / "configs/progan.yaml", TINY))
    G.set_stage(2, 0.25)
    export_generator(G.eval(), tmp_path)
    G2, _ = load_generator(tmp_path)
    assert (G2.level, G2.alpha) == (2, 0.25)
    z = torch.randn(2, 8)
    torch.testing.assert_close(G2(z, None), G(z, None))


@pytest.mark.parametrize(
    "override, key",
    [
        (["progressive.start_resolution=64"], "progressive.start_resolution"),
        (["progressive.stable_kimg=0"], "progressive.stable_kimg"),
        (["progressive.fade_kimg=-1"], "progressive.fade_kimg"),
    ],
)
def test_bad_schedule_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(ROOT / "configs/progan.yaml", override)


def _train(tmp_path, name, pattern, kimg):
    args = [
        "train",
        "configs/progan.yaml",
        *TINY,
        "launch.nproc_per_node=2",
        "train.batch_size=8",
        f"train.kimg={kimg}",
        "train.log_every=1",
        "train.checkpoint_kimg=0.048",
        "train.deterministic=true",
        "data.workers=0",
        "train.threads=1",
        "metrics.port=0",
        "data.prepare=none",
        f"data.urls={pattern}",
        "progressive.stable_kimg=0.032",
        "progressive.fade_kimg=0.032",
        "progressive.start_resolution=16",
        f"run.out_dir={tmp_path}",
        f"run.name={name}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "launch", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


@pytest.mark.slow
def test_resume_in_the_middle_of_a_fade_in_is_exact(tmp_path, digit_shards):
    _, pattern = digit_shards
    _train(tmp_path, "straight", pattern, 0.080)
    _train(tmp_path, "split", pattern, 0.048)  # stops at 0.048 kimg: level 16 -> 32 half faded in
    _train(tmp_path, "split", pattern, 0.080)
    records = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    alphas = {r["step"]: r["losses"]["G/alpha"] for r in records}
    assert alphas[7] == 0.5 and alphas[8] == 0.75  # the steps after the resume continue the fade
    final = {}
    for name in ("straight", "split"):
        ckpt = sorted((tmp_path / name / "checkpoints").glob("step-*"))[-1]
        final[name] = ckpt.name, load_file(str(ckpt / "ema.safetensors"))
    assert final["straight"][0] == final["split"][0] == "step-00000010"
    a, b = final["straight"][1], final["split"][1]
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    assert a["stage"].tolist() == [3.0, 1.0]  # grown to 32x32 and fully faded in
    out = tmp_path / "samples"
    sampled = subprocess.run(
        [sys.executable, "-m", "launch", "sample", tmp_path / "split" / "export", "--seeds", "0-1", "--out", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert len(list(out.glob("seed*.png"))) == 2
