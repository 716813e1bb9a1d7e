"""`hiresgan eval` under torchrun: two ranks split the work and report what one process reports."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from portkit import free_ports

from launch.cli import main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_two_ranks_match_one_process(tiny_export, digit_shards, tmp_path):
    _, pattern = digit_shards
    # 101 real and 41 fake images: uneven shares, so the padding/reassembly is exercised.
    common = [
        "eval",
        str(tiny_export),
        "--data",
        pattern,
        "--num",
        "41",
        "--num-real",
        "101",
        "--metrics",
        "fid,kid,pr,is",
    ]
    assert main(common + ["--cache", str(tmp_path / "c1"), "--out", str(tmp_path / "one.json")]) == 0
    # torchrun's own parser trips over our flags (--num is ambiguous with its --numa-binding even
    # after the script name), so the ranks read their argv from the environment.
    runner = tmp_path / "runner.py"
    runner.write_text(
        "import json, os, sys\nfrom launch.cli import main\n"
        "sys.exit(main(json.loads(os.environ['HIRESGAN_TEST_ARGV'])))\n"
    )
    argv = common + ["--cache", str(tmp_path / "c2"), "--out", str(tmp_path / "two.json")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HIRESGAN_TEST_ARGV": json.dumps(argv)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_ports()),
            str(runner),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert two["ranks"] == 2 and two["num_real"] == one["num_real"] == 101
    for key in ("fid", "kid", "precision", "recall", "is"):
        assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-6), key
    assert len(list((tmp_path / "c2").glob("*.safetensors"))) == 1  # rank 0 wrote the gathered cache
