"""Helpers shared by the launch tests: the real CLI in a subprocess with a tiny model, and ways to
watch a run's progress and find its rank processes (to signal or kill them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
# Same tiny model as tests/trainer/test_train_e2e.py: a run takes seconds, not minutes.
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
]


def train_args(pattern: str, out_dir: Path, name: str, *overrides: str) -> list[str]:
    return [
        "train",
        "configs/digits.yaml",
        *TINY,
        f"data.urls={pattern}",
        f"run.out_dir={out_dir}",
        f"run.name={name}",
        *overrides,
    ]


def hiresgan(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "launch", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def start(*args, log: Path) -> subprocess.Popen:
    """A background `hiresgan ...` with stdout+stderr in `log` (no pipe to fill up)."""
    return subprocess.Popen(
        [sys.executable, "-m", "launch", *map(str, args)],
        cwd=ROOT,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        text=True,
    )


def logged_step(run_dir: Path) -> int:
    """The newest step in metrics.jsonl (written every train.log_every steps), 0 before the first."""
    try:
        lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    return json.loads(lines[-1])["step"] if lines else 0


def wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout: float = 600) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = logged_step(run_dir)
        if now >= step:
            return now
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before step {step}")
        time.sleep(0.2)
    raise AssertionError(f"no step {step} within {timeout} s")


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants: what SLURM signals for a job step."""
    found, todo = [pid], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def rank_pids(launcher_pid: int) -> dict[int, int]:
    """{rank: pid} of the training processes below a launcher (they carry RANK in their environment)."""
    found: dict[int, int] = {}
    todo = [launcher_pid]
    while todo:
        pid = todo.pop()
        for child in children(pid):
            todo.append(child)
            try:
                env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for item in env:
                if item.startswith(b"RANK="):
                    found.setdefault(int(item[5:]), child)
    return found


def final_state(run_dir: Path) -> tuple[str, dict, dict]:
    ckpt = sorted((Path(run_dir) / "checkpoints").glob("step-*"))[-1]
    return ckpt.name, load_file(str(ckpt / "ema.safetensors")), json.loads((ckpt / "state.json").read_text())


def assert_same_final_state(run_a: Path, run_b: Path) -> None:
    name_a, ema_a, state_a = final_state(run_a)
    name_b, ema_b, state_b = final_state(run_b)
    assert name_a == name_b and state_a == state_b, (name_a, name_b, state_a, state_b)
    for key in ema_a:
        torch.testing.assert_close(ema_b[key], ema_a[key], rtol=1e-5, atol=1e-6, msg=key)


def read_marker(run_dir: Path) -> Optional[dict]:
    path = Path(run_dir) / "preempted.json"
    return json.loads(path.read_text()) if path.is_file() else None


def pythonpath_env(extra: Optional[dict] = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(extra or {})
    return env
