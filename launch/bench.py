"""Training throughput of a config on this machine, through the real launcher and loop.

Runs `warmup + steps` steps into a scratch run directory (log every step, no periodic
checkpoints or grids), then reads the per-step timestamps of metrics.jsonl and reports
images/second and sec/kimg over the timed steps only. Results are printed and saved as JSON.
"""

from __future__ import annotations

import datetime
import json
import shutil
import tempfile
from pathlib import Path

import torch

from trainer.telemetry.device_info import device_name


def measure(records: list[dict], *, warmup: int, batch: int) -> dict:
    """Throughput over the records after the warm-up (each record = one logged step)."""
    timed = [r for r in records if r["step"] >= warmup]
    if len(timed) < 2:
        raise ValueError(f"bench: only {len(timed)} timed step(s) logged; raise --steps")
    seconds = timed[-1]["time"] - timed[0]["time"]
    images = (timed[-1]["step"] - timed[0]["step"]) * batch
    return {
        "timed_steps": timed[-1]["step"] - timed[0]["step"],
        "seconds": seconds,
        "images_per_second": images / seconds,
        "sec_per_kimg": seconds / (images / 1000),
    }


def run_bench(config: Path, overrides: list[str], *, out: Path, steps: int, warmup: int) -> int:
    from launch.local import run_local
    from launch.preflight import prepare_data
    from trainer.config import load_config, save_config

    scratch = Path(tempfile.mkdtemp(prefix="hiresgan-bench-"))
    try:
        base = load_config(config, overrides)
        total = warmup + steps
        cfg = load_config(
            config,
            list(overrides)
            + [
                f"run.out_dir={scratch}",
                "run.name=bench",
                "run.resume=none",
                "train.log_every=1",
                f"train.kimg={total * base.train.batch_size / 1000}",
                "train.checkpoint_kimg=1e9",
                "train.sample_kimg=1e9",
            ],
        )
        prepare_data(cfg)
        save_config(cfg, cfg.run_dir)
        code = run_local(cfg)
        if code:
            return code
        records = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
        result = {
            "config": str(config),
            "overrides": list(overrides),
            "family": cfg.model.family,
            "resolution": cfg.data.resolution,
            "batch_size": cfg.train.batch_size,
            "world_size": cfg.launch.nproc_per_node,
            "precision": cfg.train.precision,
            "zero_stage": cfg.train.zero_stage,
            "device": device_name(),
            "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "warmup_steps": warmup,
            **measure(records, warmup=warmup, batch=cfg.train.batch_size),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(
        f"hiresgan bench: {result['images_per_second']:.1f} images/s, {result['sec_per_kimg']:.1f} sec/kimg "
        f"({cfg.model.family} {cfg.data.resolution}px, batch {cfg.train.batch_size}, "
        f"{result['world_size']} rank(s), {result['device']}) -> {out}"
    )
    return 0
