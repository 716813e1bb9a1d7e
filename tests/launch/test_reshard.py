"""Resume with another world size: a 2-rank ZeRO-1 run's checkpoint resumed by 1 rank. The Adam
partitions of both old ranks must land, unchanged, in the one new rank's optimizer."""

import json
import os
import subprocess
import sys

import pytest
import torch
from launchkit import ROOT, train_args
from safetensors import safe_open
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

COMMON = ["train.zero_stage=1", "train.sample_kimg=10", "train.checkpoint_kimg=10"]


def _run(args, env=None):
    result = subprocess.run(
        [sys.executable, "-m", "launch", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def test_two_zero1_ranks_resume_as_one_with_the_same_weights_and_adam_moments(tmp_path, digit_shards):
    _, pattern = digit_shards
    run_dir = tmp_path / "ws"
    _run(train_args(pattern, tmp_path, "ws", *COMMON, "launch.nproc_per_node=2", "train.kimg=0.032"))
    saved = run_dir / "checkpoints" / "step-00000004"
    assert json.loads((saved / "state.json").read_text())["world_size"] == 2

    dump = tmp_path / "dump"
    resumed = _run(
        train_args(pattern, tmp_path, "ws", *COMMON, "launch.nproc_per_node=1", "train.kimg=0.064"),
        env={"HIRESGAN_DEBUG_RESUME_DUMP": str(dump)},
    )
    assert "world size changed from 2 to 1 ranks" in resumed.stderr, resumed.stderr[-3000:]
    final = json.loads((run_dir / "checkpoints" / "step-00000008" / "state.json").read_text())
    assert final["world_size"] == 1 and final["step"] == 8 and final["images_seen"] == 64
    assert (run_dir / "export" / "generator.safetensors").is_file()

    for sub in ("G", "D"):
        before = load_file(str(saved / f"optim-{sub}.safetensors"))  # gathered from the 2 ranks' partitions
        after = load_file(str(dump / f"{sub}.safetensors"))  # re-gathered from the 1-rank engine after loading
        names = json.loads(safe_open(str(dump / f"{sub}.safetensors"), "pt").metadata()["order"])
        assert names and all(f"exp_avg/{n}" in before for n in names), sub
        for key, value in before.items():
            assert torch.equal(after[key], value), f"{sub} {key}"
        for n in names:  # the module weights are the fp32 masters (fp32 training)
            assert torch.equal(after[f"module/{n}"], before[f"fp32/{n}"]), f"{sub} {n}"
        for key in ("exp_avg", "exp_avg_sq"):
            full = torch.cat([before[f"{key}/{n}"].flatten() for n in names])
            # The one rank's own flat partition holds every parameter's moments, in order...
            assert torch.equal(after[f"flat0/{key}"][: full.numel()], full), f"{sub} {key}"
            # ...and old rank 1's half came through (not zeros from a missing partition).
            if key == "exp_avg_sq":
                assert full[: full.numel() // 2].count_nonzero() and full[full.numel() // 2 :].count_nonzero()
    ema_before, ema_after = load_file(str(saved / "ema.safetensors")), load_file(str(dump / "ema.safetensors"))
    assert ema_before.keys() == ema_after.keys()
    assert all(torch.equal(ema_after[k], v) for k, v in ema_before.items())
