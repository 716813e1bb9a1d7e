"""A real (tiny) training run through the CLI whose batches mix a `hiresgan synth` set into the digits."""

import subprocess
import sys
from pathlib import Path

import pytest

from trainer.sampling.synth import synthesize

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
    "launch.nproc_per_node=1",
    "metrics.port=0",
]


@pytest.mark.slow
def test_one_rank_trains_on_digits_with_a_synthetic_set_mixed_in(cond_export, digit_shards, tmp_path):
    synth = tmp_path / "synth"
    synthesize(cond_export, synth, per_class=4)
    _, pattern = digit_shards
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch",
            "train",
            "configs/digits.yaml",
            *TINY,
            f"data.urls={pattern}",
            "data.prepare=none",
            f"data.mix.urls={synth}",
            "data.mix.fraction=0.5",
            "train.kimg=0.032",
            f"run.out_dir={tmp_path}",
            "run.name=mix",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "mix" / "export" / "generator.safetensors").is_file()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch",
            "train",
            "configs/digits.yaml",
            *TINY,
            f"data.urls={pattern}",
            "data.prepare=none",
            "data.mix.fraction=0.5",
            f"run.out_dir={tmp_path}",
            "run.name=bad",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "data.mix.urls" in bad.stderr and not (tmp_path / "bad" / "checkpoints").exists()
