"""Shared set-up of the text2img tests: a small captioned colour-digits shard set (one colouring
per training digit instead of eight) written once per session."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def colour_shards(tmp_path_factory):
    from trainer.data.colour_digits import write_colour_digit_shards

    folder = tmp_path_factory.mktemp("colour_digits") / "shards"
    write_colour_digit_shards(folder, shards=4, renders=1)
    return folder


# A tiny text2img run: 16x16, a few steps, 2 ranks, R1 + path length + ADA, deterministic.
TINY = [
    "model.channel_base=128",
    "model.channel_max=16",
    "model.z_dim=8",
    "model.w_dim=16",
    "model.mapping_layers=1",
    "text.dim=16",
    "text.layers=1",
    "text.heads=2",
    "text.attn_res=8",
    "data.resolution=16",
    "train.batch_size=8",
    "train.log_every=2",
    "data.workers=0",
    "loss.d_reg_interval=2",
    "loss.g_reg_interval=2",
    "loss.pl_weight=2",
    "loss.style_mixing=0.9",
    "augment.kind=ada",
    "train.threads=1",
    "metrics.port=0",
    "launch.nproc_per_node=2",
    "train.deterministic=true",
]


@pytest.fixture
def tiny():
    return list(TINY)


@pytest.fixture
def train_one_rank(tiny, colour_shards):
    """`launch train configs/text2img_digits.yaml` through the real CLI on one rank, with the tiny
    overrides (less those starting with a `drop` prefix) and the session's shards, into OUT/NAME."""

    def run(out, name, *extra, drop=()):
        overrides = [o for o in tiny if not o.startswith(("launch.nproc_per_node", *drop))]
        command = [
            sys.executable,
            "-m",
            "launch",
            "train",
            "configs/text2img_digits.yaml",
            *overrides,
            "launch.nproc_per_node=1",
            f"data.urls={colour_shards}",
            "data.prepare=none",
            f"run.out_dir={out}",
            f"run.name={name}",
            *map(str, extra),
        ]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)

    return run
