"""Exports and checkpoints are written with the user's umask (group-readable on a shared file
system when the umask allows it), not safetensors' owner-only 0600."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer.files import current_umask, save_safetensors

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "model.channel_base=256",
    "model.channel_max=16",
    "model.z_dim=16",
    "model.w_dim=16",
    "model.mapping_layers=1",
    "train.batch_size=8",
    "train.log_every=2",
    "data.workers=0",
    "loss.d_reg_interval=4",
    "loss.g_reg_interval=2",
    "train.threads=1",
    "metrics.port=0",
    "data.prepare=none",
    "launch.nproc_per_node=1",
    "train.kimg=0.032",
    "train.checkpoint_kimg=0.016",
]


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_safetensors_files_follow_the_umask(tmp_path, umask_027):
    assert current_umask() == 0o027
    save_safetensors({"a": torch.zeros(2)}, tmp_path / "a.safetensors")
    assert mode(tmp_path / "a.safetensors") == 0o640


def test_an_export_is_readable_by_the_group(tmp_path, umask_027):
    from trainer.config import load_config
    from trainer.export import export_generator
    from trainer.models import build_networks

    G, _ = build_networks(load_config("configs/mlp.yaml", ["model.mlp_hidden=16", "model.mlp_layers=2"]))
    weights = export_generator(G, tmp_path / "export")
    assert mode(weights) == 0o640 and mode(tmp_path / "export" / "generator.json") == 0o640


@pytest.mark.slow
def test_a_runs_checkpoints_and_export_follow_the_umask(tmp_path, digit_shards):
    """A real one-rank run under umask 027: every file it writes is group-readable (0640)."""
    argv = [
        sys.executable,
        "-m",
        "launch",
        "train",
        "configs/digits.yaml",
        *TINY,
        f"data.urls={digit_shards[1]}",
        f"run.out_dir={tmp_path}",
        "run.name=modes",
    ]
    result = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=lambda: os.umask(0o027)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "modes"
    files = [p for p in run.rglob("*") if p.is_file()]
    assert any(p.name == "generator.safetensors" for p in files)
    assert any(p.suffix == ".safetensors" and "checkpoints" in p.parts for p in files)
    unreadable = [str(p.relative_to(run)) for p in files if not mode(p) & stat.S_IRGRP]
    assert not unreadable, unreadable
