"""CycleGAN: networks, image pool, config errors, and (slow) 2 ranks training on two shard
sets, then `hiresgan sample --translate` on a folder."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.config import ConfigError, load_config
from trainer.models import build_networks
from trainer.recipes.cyclegan import ImagePool

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "data.resolution=32",
    "data.channels=1",
    "model.resnet_filters=4",
    "model.resnet_blocks=1",
    "model.patch_layers=2",
]


def test_two_directions_and_two_patch_discriminators():
    G, D = build_networks(load_config(ROOT / "configs/cyclegan.yaml", TINY))
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    ab, ba = G(x, direction="ab"), G(x, direction="ba")
    assert ab.shape == ba.shape == x.shape and not torch.allclose(ab, ba)
    assert D(ab, domain="b").shape[0] == 2 and D(ab, domain="b").shape[1] > 1  # one score per patch
    assert G.z_dim == 0 and G.c_dim == 0


def test_image_pool_returns_new_images_until_full_then_mixes_in_old_ones():
    torch.manual_seed(0)
    pool = ImagePool(4, (1, 2, 2), torch.device("cpu"))
    first = pool.query(torch.zeros(4, 1, 2, 2))
    assert torch.equal(first, torch.zeros(4, 1, 2, 2)) and pool.count == 4
    seen = torch.cat([pool.query(torch.full((4, 1, 2, 2), float(i)))[:, 0, 0, 0] for i in range(1, 30)])
    assert (seen == 0).any() and (seen > 0).any()  # old images come back, new ones pass through
    assert ImagePool(0, (1, 2, 2), torch.device("cpu")).query(torch.ones(2, 1, 2, 2)).sum() == 8


@pytest.mark.parametrize(
    "override, key",
    [
        (["data.urls_b="], "data.urls_b"),
        (["model.conditional=true", "data.num_classes=10"], "model.conditional"),
        (["augment.kind=ada"], "augment.kind"),
    ],
)
def test_bad_cyclegan_settings_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(ROOT / "configs/cyclegan.yaml", TINY + override)


@pytest.mark.slow
def test_cyclegan_trains_on_two_ranks_and_translates_a_folder(tmp_path, digit_shards):
    # Domain B is named by its shard folder (a manifest), domain A by a brace pattern: both go
    # through trainer.data.stream_for, so urls_b accepts every form urls does.
    folder_b, pattern = digit_shards
    args = [
        "train",
        "configs/cyclegan.yaml",
        *TINY,
        "launch.nproc_per_node=2",
        "train.batch_size=4",
        "train.kimg=0.016",
        "train.log_every=2",
        "data.workers=0",
        "train.threads=1",
        "metrics.port=0",
        "loss.pool_size=2",
        f"data.urls={pattern}",
        f"data.urls_b={folder_b}",
        f"run.out_dir={tmp_path}",
        "run.name=cyc",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "launch", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    records = [json.loads(line) for line in (tmp_path / "cyc" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 4
    for record in records:
        assert {"G/cycle", "G/identity", "D/adversarial_a", "D/adversarial_b"} <= set(record["losses"])
        assert all(np.isfinite(v) for v in record["losses"].values())
    assert (tmp_path / "cyc" / "samples" / "latest.png").is_file()
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 20), 40 * i, np.uint8), "L").save(folder / f"img{i}.png")
    out = tmp_path / "out"
    translated = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch",
            "sample",
            tmp_path / "cyc" / "export",
            "--translate",
            folder,
            "--direction",
            "ba",
            "--out",
            out,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert translated.returncode == 0, translated.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["img0.png", "img1.png", "img2.png"]
    assert Image.open(out / "img0.png").size == (32, 32)
    seeds = subprocess.run(
        [sys.executable, "-m", "launch", "sample", tmp_path / "cyc" / "export", "--seeds", "0", "--out", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert seeds.returncode == 2 and "--translate" in seeds.stderr
