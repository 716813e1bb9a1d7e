"""Preemption: a signal (SIGUSR1 from SLURM's `--signal`, SIGTERM from a scheduler or torchrun) asks
the run to stop; every rank finishes its step, the run writes a checkpoint and exits with
PREEMPTED_EXIT, and under SLURM rank 0 requeues the job, which then resumes by itself.

Agreement across ranks costs one 4-byte all-reduce per step on a CPU (gloo) group, started
asynchronously at the end of step k and read at the end of step k+1: by then it has long finished,
so the hot loop never waits on it and never syncs with the GPU. A signal seen by any rank stops all
ranks at the same step (one step later than the signal at most).

This module touches torch.distributed directly (a gloo side group); the two helpers marked so
belong in trainer/distributed.py once that module grows an async collective.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

# EX_TEMPFAIL from sysexits.h: "temporary failure, the user is invited to retry" -- what a
# preempted run is. Launchers and batch scripts test for it.
PREEMPTED_EXIT = 75
DEFAULT_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
MARKER = "preempted.json"
# Set by the rendered sbatch script: rank 0 runs `scontrol requeue $SLURM_JOB_ID` after the checkpoint.
REQUEUE_ENV = "HIRESGAN_REQUEUE"


class PreemptionWatcher:
    """Turns signals into a flag, and the flag into one decision all ranks share."""

    def __init__(self, signals: tuple[signal.Signals, ...] = DEFAULT_SIGNALS):
        self.signals = signals
        self.received: Optional[int] = None  # first signal number seen by this rank
        self.received_at: Optional[float] = None
        self._previous: dict[int, object] = {}
        self._group = None
        self._pending: Optional[tuple[object, torch.Tensor]] = None

    def install(self) -> "PreemptionWatcher":
        """Call on every rank, after the process group exists (the side group is collective)."""
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        if dist.is_initialized() and dist.get_world_size() > 1:
            # distributed.py candidate: a CPU group, so the flag never goes through NCCL/GPU memory.
            self._group = dist.new_group(backend="gloo")
        return self

    def _on_signal(self, signum, _frame) -> None:
        if self.received is None:
            self.received, self.received_at = signum, time.monotonic()

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.received).name if self.received else "none"

    def should_stop(self) -> bool:
        """Call exactly once per step on every rank; True on all ranks at the same step."""
        if self._group is None:
            return self.received is not None
        stop = False
        if self._pending is not None:
            work, flag = self._pending
            work.wait()  # started a whole step ago: already complete
            stop = bool(flag.item())  # a CPU tensor: no device sync
            self._pending = None
        if stop:
            return True
        flag = torch.tensor([0 if self.received is None else 1], dtype=torch.int32)
        # distributed.py candidate: async all-reduce on the side group.
        work = dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group, async_op=True)
        self._pending = (work, flag)
        return False

    def close(self) -> None:
        """Finish the outstanding collective (all ranks) and restore the previous handlers."""
        if self._pending is not None:
            self._pending[0].wait()
            self._pending = None
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


@contextmanager
def signals_blocked(signals: tuple[signal.Signals, ...] = DEFAULT_SIGNALS) -> Iterator[None]:
    """Hold the preemption signals back while child processes (data-loader workers) start: they
    inherit the blocked mask, across exec too, so SLURM's signal to every process of the step does
    not kill them mid-batch. The mask is per thread: a signal arriving meanwhile is handled through
    another thread of the process, or stays pending until the end of the block; it is not lost."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def write_marker(
    run_dir: Path,
    *,
    step: int,
    kimg: float,
    signal_name: str,
    checkpoint: Optional[Path],
    requeued: bool,
    seconds_to_checkpoint: Optional[float],
) -> Path:
    """Rank 0 records why the run stopped; launchers read it to report and choose the exit code."""
    path = Path(run_dir) / MARKER
    data = {
        "step": step,
        "kimg": kimg,
        "signal": signal_name,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "requeued": requeued,
        "seconds_signal_to_checkpoint": seconds_to_checkpoint,
        "time": time.time(),
        "run_id": os.environ.get("TORCHELASTIC_RUN_ID", ""),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),
    }
    tmp = path.with_name(f".{MARKER}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
    return path


def read_marker(run_dir: Path, *, newer_than: float = 0.0) -> Optional[dict]:
    """The marker of a preemption that happened after `newer_than` (a time.time()), else None."""
    path = Path(run_dir) / MARKER
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("time", 0) >= newer_than else None


def clear_marker(run_dir: Path) -> None:
    (Path(run_dir) / MARKER).unlink(missing_ok=True)


def requeue_wanted() -> bool:
    return os.environ.get(REQUEUE_ENV) == "1" and bool(os.environ.get("SLURM_JOB_ID"))


def requeue_slurm_job() -> bool:
    """Ask SLURM to put this job back in the queue; SLURM then ends the running allocation, so call
    it only after the checkpoint is complete. False (with the reason logged) when it fails."""
    job_id = os.environ["SLURM_JOB_ID"]
    # Said first: SLURM may end this process (SIGTERM) before `scontrol` returns.
    log.warning("requeueing SLURM job %s; it resumes from the checkpoint when it starts again", job_id)
    try:
        result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.error("could not run `scontrol requeue %s`: %s; resubmit the job to resume", job_id, exc)
        return False
    if result.returncode != 0:
        log.error(
            "`scontrol requeue %s` failed: %s; is the job submitted with --requeue?", job_id, result.stderr.strip()
        )
        return False
    return True
