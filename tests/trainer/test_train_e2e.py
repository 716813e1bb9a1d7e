"""Real training runs through the real CLI: elastic-agent ranks, DeepSpeed engines, shards,
checkpoints, exports, resume, and bad input. Tiny networks so each run takes seconds."""

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from portkit import free_ports
from safetensors.torch import load_file

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
]

pytestmark = pytest.mark.slow


def hiresgan(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "launch", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def train(tmp_path, name, *overrides, resume=None):
    _, pattern = pytest.digit_pattern
    args = [
        "train",
        "configs/digits.yaml",
        *TINY,
        f"data.urls={pattern}",
        "data.prepare=none",
        f"run.out_dir={tmp_path}",
        f"run.name={name}",
        "metrics.port=0",
        *overrides,
    ]
    if resume:
        args += ["--resume", resume]
    result = hiresgan(*args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.fixture(autouse=True)
def _shards(digit_shards):
    pytest.digit_pattern = digit_shards


def assert_exported(run_dir: Path):
    weights = run_dir / "export" / "generator.safetensors"
    assert weights.is_file() and (run_dir / "export" / "generator.json").is_file()
    assert (run_dir / "samples" / "latest.png").is_file()
    assert (run_dir / "config.yaml").is_file()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records and all(all(map(lambda v: v == v, r["losses"].values())) for r in records)  # no NaN
    return weights


def assert_tensorboard_has_the_catalog(run_dir: Path):
    """TensorBoard's own reader finds a scalar for every catalog series this CPU run sets, and the
    sample grids as images."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from trainer.telemetry.catalog import CATALOG, PREFIX

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0}).Reload()
    tags = events.Tags()
    names = {tag.split("/")[0] for tag in tags["scalars"]}
    # Unset here: CUDA memory (no GPU) and the validation scores of families with a validation set
    # (super-resolution); the eval gauges live in their own registry.
    unset = {"cuda_memory_allocated_bytes", "cuda_memory_reserved_bytes", "validation_score"}
    for spec in CATALOG:
        if spec.key in unset:
            continue
        name = f"{PREFIX}_{spec.key}"
        assert {name, f"{name}_total", f"{name}_sum"} & names, f"no TensorBoard scalar for {name}"
    losses = [t for t in tags["scalars"] if t.startswith(f"{PREFIX}_loss/")]
    assert any("network=G" in t for t in losses) and any("network=D" in t for t in losses)
    steps = [e.step for e in events.Scalars(f"{PREFIX}_images_seen_total")]
    assert steps == sorted(steps) and steps[-1] == 48  # the step axis is images seen
    assert "samples" in tags["images"] and events.Images("samples")[-1].width > 0


def test_one_rank_trains_exports_and_samples_from_the_export_alone(tmp_path):
    result = train(tmp_path, "one", "launch.nproc_per_node=1", "train.kimg=0.048", "metrics.tensorboard=true")
    run_dir = tmp_path / "one"
    weights = assert_exported(run_dir)
    assert_tensorboard_has_the_catalog(run_dir)
    assert str(weights) in result.stdout  # it says where the export is
    out = tmp_path / "samples"
    sampled = hiresgan("sample", weights, "--seeds", "0-3", "--class", "3", "--truncation", "0.7", "--out", out)
    assert sampled.returncode == 0, sampled.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"seed{i:04d}-class3.png" for i in range(4)]
    bad = hiresgan("sample", run_dir / "export", "--seeds", "0", "--class", "12", "--out", out)
    assert bad.returncode == 2 and "--class 12 is out of range" in bad.stderr


def _scrape_until(url: str, needle: str, stop: threading.Event, found: list):
    while not stop.is_set():
        try:
            body = urllib.request.urlopen(url, timeout=1).read().decode()
            if needle in body:
                found.append(body)
                return
        except Exception:  # noqa: BLE001 - refused, reset, or a half-written response: poll again
            pass
        time.sleep(0.2)


def test_two_ranks_train_together_and_serve_metrics(tmp_path):
    port = free_ports(2)  # local ranks 0 and 1
    stop, found = threading.Event(), []
    scraper = threading.Thread(
        target=_scrape_until,
        daemon=True,
        args=(f"http://127.0.0.1:{port + 1}/metrics", "hiresgan_images_seen_total{", stop, found),
    )
    scraper.start()
    try:
        train(tmp_path, "two", "launch.nproc_per_node=2", "train.kimg=0.128", f"metrics.port={port}")
    finally:
        stop.set()
        scraper.join()
    assert_exported(tmp_path / "two")
    assert found, "rank 1 never served hiresgan_images_seen_total on port base+1"
    assert 'rank="1"' in found[0] and "hiresgan_step_duration_seconds_bucket" in found[0]
    state = json.loads(next((tmp_path / "two" / "checkpoints").glob("step-*/state.json")).read_text())
    assert state["world_size"] == 2


@pytest.mark.parametrize("stage, precision", [(1, "bf16"), (2, "fp32")])
def test_two_ranks_with_zero_stages(tmp_path, stage, precision):
    # 4 steps cover both lazy regularizers (path length at steps 0 and 2, R1 at step 0): ZeRO-2
    # reduces every parameter's gradient and fails if a phase leaves one as None.
    train(
        tmp_path,
        "zero",
        "launch.nproc_per_node=2",
        "train.kimg=0.032",
        f"train.zero_stage={stage}",
        f"train.precision={precision}",
    )
    weights = assert_exported(tmp_path / "zero")
    assert all(torch.isfinite(t).all() for t in load_file(str(weights)).values())


def _final_state(run_dir: Path):
    ckpt = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    return ckpt.name, load_file(str(ckpt / "ema.safetensors")), json.loads((ckpt / "state.json").read_text())


def test_resume_ends_in_the_same_state_as_an_uninterrupted_run(tmp_path):
    common = ["launch.nproc_per_node=1", "train.deterministic=true", "train.checkpoint_kimg=0.048"]
    train(tmp_path, "straight", *common, "train.kimg=0.096")
    train(tmp_path, "split", *common, "train.kimg=0.048")
    train(tmp_path, "split", *common, "train.kimg=0.096")  # automatic resume of the run dir
    name_a, ema_a, state_a = _final_state(tmp_path / "straight")
    name_b, ema_b, state_b = _final_state(tmp_path / "split")
    assert name_a == name_b == "step-00000012"
    assert state_a == state_b
    for key in ema_a:
        torch.testing.assert_close(ema_b[key], ema_a[key], rtol=1e-5, atol=1e-6, msg=key)
    # The generator moved away from its initial weights, so the comparison means something.
    first = sorted((tmp_path / "split" / "checkpoints").glob("step-*"))[0]
    ema_mid = load_file(str(first / "ema.safetensors"))
    assert any(not torch.allclose(ema_mid[k], ema_a[k]) for k in ema_a if ema_a[k].is_floating_point())


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_bad_input_gives_one_clear_line_and_overwrites_nothing(tmp_path):
    _, pattern = pytest.digit_pattern
    run_dir = tmp_path / "kept"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("precious: true\n")
    before = _snapshot(tmp_path)
    cases = [
        (["train.kimg=-1"], "train.kimg"),
        (["model.chanel_base=4"], "model.chanel_base"),
        ([f"data.urls={tmp_path}/missing-{{0..3}}.tar"], "not found"),
    ]
    for overrides, needle in cases:
        result = hiresgan(
            "train",
            "configs/digits.yaml",
            f"data.urls={pattern}",
            "data.prepare=none",
            f"run.out_dir={tmp_path}",
            "run.name=kept",
            *overrides,
        )
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip() and "WARNING" not in line]
        assert len(lines) == 1 and lines[0].startswith("hiresgan: error:") and needle in lines[0], result.stderr
    assert _snapshot(tmp_path) == before


def test_damaged_checkpoints_are_refused_or_skipped(tmp_path):
    train(tmp_path, "dmg", "launch.nproc_per_node=1", "train.kimg=0.064", "train.checkpoint_kimg=0.032")
    newest, older = sorted((tmp_path / "dmg" / "checkpoints").glob("step-*"), reverse=True)
    victim = newest / "ema.safetensors"
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    # An explicit resume of the damaged checkpoint: one clear line, exit 2.
    _, pattern = pytest.digit_pattern
    result = hiresgan(
        "train",
        "configs/digits.yaml",
        *TINY,
        f"data.urls={pattern}",
        "data.prepare=none",
        f"run.out_dir={tmp_path}",
        "run.name=other",
        "--resume",
        newest,
    )
    assert result.returncode == 2 and "is damaged" in result.stderr and "SHA-256" in result.stderr
    assert not (tmp_path / "other").exists()
    # Automatic resume falls back to the older, intact checkpoint with a warning.
    from trainer.checkpoint import find_resumable

    assert find_resumable(tmp_path / "dmg") == older


def test_under_an_external_torchrun_the_command_runs_as_a_worker(tmp_path):
    """torchrun makes the ranks; `hiresgan train` must not spawn a second set of them."""
    _, pattern = pytest.digit_pattern
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port",
            str(free_ports()),
            "-m",
            "launch",
            "train",
            "configs/digits.yaml",
            *TINY,
            f"data.urls={pattern}",
            "data.prepare=none",
            f"run.out_dir={tmp_path}",
            "run.name=ext",
            "metrics.port=0",
            "train.kimg=0.032",
            "launch.nproc_per_node=1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert_exported(tmp_path / "ext")
    # Two ranks trained (from torchrun), not nproc_per_node=1 and not 2 x 1 spawned groups.
    state = json.loads(next((tmp_path / "ext" / "checkpoints").glob("step-*/state.json")).read_text())
    assert state["world_size"] == 2 and state["step"] == 4


def test_bench_reports_throughput(tmp_path):
    out = tmp_path / "bench.json"
    _, pattern = pytest.digit_pattern
    result = hiresgan(
        "bench",
        "configs/digits.yaml",
        *TINY,
        f"data.urls={pattern}",
        "data.prepare=none",
        "launch.nproc_per_node=1",
        "metrics.port=0",
        "--steps",
        "4",
        "--warmup",
        "2",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["timed_steps"] == 4 and report["images_per_second"] > 0
    assert report["world_size"] == 1 and report["batch_size"] == 8 and report["device"]
    assert "images/s" in result.stdout
