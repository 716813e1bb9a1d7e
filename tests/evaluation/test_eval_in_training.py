"""Evaluation inside training (eval.every_kimg): config validation, the in-process hook, and one
real 2-rank training run whose records equal `hiresgan eval` on the export of the same checkpoint."""

import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from portkit import free_ports
from prometheus_client import CollectorRegistry

from launch.cli import main
from tests.trainer.test_train_e2e import TINY, _scrape_until
from trainer.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "configs" / "digits.yaml"


@pytest.fixture
def inception_file(tmp_path):
    path = tmp_path / "inception.safetensors"
    path.write_bytes(b"not really weights, but a file with a hash")
    return path


@pytest.mark.parametrize(
    "override, words",
    [
        (["eval.metrics=fid,psnr"], ["eval.metrics", "fid, kid, pr, is"]),
        (["eval.features=clip"], ["eval.features", "digits, inception"]),
        (["eval.every_kimg=-1"], ["eval.every_kimg", ">= 0"]),
        (["eval.num_fake=1"], ["eval.num_fake", "at least 2"]),
        (["eval.evry_kimg=1"], ["eval.evry_kimg", "every_kimg"]),  # typo: names the valid keys
        (["eval.every_kimg=5", "eval.features=inception"], ["eval.inception_weights", "convert"]),
        (
            ["eval.every_kimg=5", "eval.features=inception", "eval.inception_weights=/no/such.safetensors"],
            ["eval.inception_weights", "does not exist"],
        ),
        (
            ["eval.every_kimg=5", "eval.features=inception", "eval.inception_weights={weights}"],
            ["eval.inception_sha256", "64-hex-digit"],
        ),
        (
            [
                "eval.every_kimg=5",
                "eval.features=inception",
                "eval.inception_weights={weights}",
                "eval.inception_sha256=" + "ab" * 32,
            ],
            ["eval.inception_sha256", "has SHA-256"],
        ),
        (["eval.every_kimg=5", "data.resolution=64"], ["eval.features", "1x32x32", "inception"]),
    ],
)
def test_bad_eval_keys_name_the_key(override, words, inception_file):
    with pytest.raises(ConfigError) as info:
        load_config(DIGITS, [o.replace("{weights}", str(inception_file)) for o in override])
    for word in words:
        assert word in str(info.value)


def test_eval_is_off_by_default_and_weights_are_only_needed_when_on(inception_file):
    import hashlib

    assert load_config(DIGITS).eval.every_kimg == 0
    load_config(DIGITS, ["eval.features=inception"])  # off: no weights needed
    sha = hashlib.sha256(inception_file.read_bytes()).hexdigest()
    cfg = load_config(
        DIGITS,
        [
            "eval.every_kimg=5",
            "eval.features=inception",
            f"eval.inception_weights={inception_file}",
            f"eval.inception_sha256={sha.upper()}",
            "data.resolution=64",
            "data.channels=3",
        ],
    )
    assert cfg.eval.features == "inception"


def test_periodic_eval_in_process_keeps_mode_and_rng_and_reports(tmp_path, digit_shards):
    from trainer.checkpoint import Progress
    from trainer.distributed import DistEnv
    from trainer.evaluation.periodic import PeriodicEval
    from trainer.models import build_networks

    _, pattern = digit_shards
    cfg = load_config(
        DIGITS,
        TINY
        + [
            f"data.urls={pattern}",
            f"run.out_dir={tmp_path}",
            "run.name=p",
            "eval.every_kimg=0.016",
            "eval.metrics=fid,kid",
            "eval.num_fake=16",
            "eval.num_real=40",
            f"eval.cache={tmp_path / 'cache'}",
        ],
    )
    env = DistEnv(rank=0, world_size=1, local_rank=0, local_world_size=1, node="h", device=torch.device("cpu"))
    G, _ = build_networks(cfg)
    G.train()  # evaluation must switch to eval mode and back
    registry = CollectorRegistry()
    rng = torch.get_rng_state()
    evaluation = PeriodicEval(cfg, env, G, registry=registry)  # builds the feature network: no RNG draws
    assert torch.equal(torch.get_rng_state(), rng)
    cfg.run_dir.mkdir(parents=True)
    progress = Progress(world_size=1)
    progress.step, progress.images_seen = 1, 8
    assert evaluation.after_step(progress) is None  # 8 images: no multiple of 16 crossed
    progress.step, progress.images_seen = 2, 16
    rng = torch.get_rng_state()
    record = evaluation.after_step(progress)
    assert torch.equal(torch.get_rng_state(), rng) and G.training
    assert record["step"] == 2 and record["kimg"] == 0.016 and math.isfinite(record["fid"])
    assert record["num_real"] == 40 and record["num_fake"] == 16 and record["ranks"] == 1
    assert evaluation.at_end(progress) is None  # this step is already evaluated
    lines = (cfg.run_dir / "eval.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["fid"] == record["fid"]
    labels = {"job": "p", "features": "digits"}
    assert registry.get_sample_value("hiresgan_eval_fid", labels) == record["fid"]
    assert registry.get_sample_value("hiresgan_eval_kimg", labels) == 0.016
    assert len(list((tmp_path / "cache").glob("real-digits-*.safetensors"))) == 1


@pytest.mark.slow
def test_two_ranks_evaluate_during_training_as_hiresgan_eval_does_afterwards(tmp_path, digit_shards):
    _, pattern = digit_shards
    metrics = "fid,kid,pr"
    port = free_ports()
    stop, found = threading.Event(), []
    scraper = threading.Thread(
        target=_scrape_until, daemon=True, args=(f"http://127.0.0.1:{port}/metrics", "hiresgan_eval_fid{", stop, found)
    )
    scraper.start()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "launch",
                "train",
                str(DIGITS),
                *TINY,
                f"data.urls={pattern}",
                "data.prepare=none",
                f"run.out_dir={tmp_path}",
                "run.name=ev",
                f"metrics.port={port}",
                "launch.nproc_per_node=2",
                "train.kimg=0.064",
                "eval.every_kimg=0.032",
                f"eval.metrics={metrics}",
                "eval.num_fake=48",
                "eval.num_real=150",
                f"eval.cache={tmp_path / 'cache'}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        stop.set()
        scraper.join()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    run_dir = tmp_path / "ev"
    records = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert [(r["step"], r["kimg"]) for r in records] == [(4, 0.032), (8, 0.064)]  # 8 images a step
    assert all(math.isfinite(r["fid"]) and r["ranks"] == 2 and r["num_real"] == 150 for r in records)
    assert records[0]["fid"] != records[1]["fid"]  # G_ema moved between the two
    assert found and 'features="digits"' in found[0], "rank 0 never served hiresgan_eval_fid"
    # The final record equals `hiresgan eval` (one process, its own real features) on the export
    # of the final checkpoint: same seeds, same fakes, same numbers.
    assert main(["export", str(run_dir)]) == 0
    out = tmp_path / "after.json"
    assert (
        main(
            [
                "eval",
                str(run_dir / "exports" / "step-00000008"),
                "--data",
                pattern,
                "--num",
                "48",
                "--num-real",
                "150",
                "--metrics",
                metrics,
                "--cache",
                str(tmp_path / "cache2"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    after = json.loads(out.read_text())
    for key in ("fid", "kid", "precision", "recall"):
        assert records[-1][key] == pytest.approx(after[key], rel=1e-5, abs=1e-6), key
