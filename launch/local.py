"""Start `launch.nproc_per_node` local ranks under torch's elastic agent (what torchrun runs),
which also restarts the worker group up to `launch.max_restarts` times after a failure.

The agent forwards SIGTERM and SIGUSR1 to the ranks and gives them SHUTDOWN_TIMEOUT seconds to
write their preemption checkpoint (trainer/preemption.py) before it kills them.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from pathlib import Path

from trainer.config import Config, ConfigError
from trainer.distributed import free_port
from trainer.preemption import PREEMPTED_EXIT, read_marker

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# torch's default set plus SIGUSR1 (SLURM's `--signal` warning): without it the agent would die of
# SIGUSR1's default action and its ranks with it, before any checkpoint.
SIGNALS_TO_HANDLE = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"
SHUTDOWN_TIMEOUT = 120  # seconds the ranks get to checkpoint after a signal (SLURM warns 120 s ahead)


def worker_argv(run_dir: Path) -> list[str]:
    return ["-m", "trainer.worker", str(run_dir)]


# A fresh c10d store for every restart of the worker group. With torch 2.13's default (the agent's
# rendezvous store shared with the workers) the keys of the failed attempt stay in the store, and a
# restarted rank can read the dead rank 0's gloo address and fail with "Connection refused".
FRESH_STORE_ENV = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}


def worker_env() -> dict[str, str]:
    """Workers import this source tree, whatever their working directory."""
    path = os.environ.get("PYTHONPATH", "")
    parts = [str(PROJECT_ROOT)] + [p for p in path.split(os.pathsep) if p and p != str(PROJECT_ROOT)]
    return {"PYTHONPATH": os.pathsep.join(parts), **FRESH_STORE_ENV}


def report_preemption(run_dir: Path, started: float) -> int | None:
    """PREEMPTED_EXIT with a one-line summary when the ranks stopped for a preemption, else None."""
    marker = read_marker(run_dir, newer_than=started)
    if marker is None:
        return None
    print(
        f"hiresgan: preempted by {marker['signal']} at step {marker['step']}; checkpoint "
        f"{marker['checkpoint']} is complete; run the same command again to resume "
        f"(exit code {PREEMPTED_EXIT})",
        file=sys.stderr,
    )
    return PREEMPTED_EXIT


def check_rendezvous(host: str, port: int) -> None:
    """The local agent hosts the rendezvous: fail now, naming the key, if it cannot listen there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            key = "launch.master_port" if exc.errno == 98 else "launch.master_addr"
            raise ConfigError(
                f"config key '{key}': cannot listen on {host}:{port} ({exc.strerror}); "
                "use launch.master_port=0 for a free port and an address of this machine"
            ) from None


def run_local(cfg: Config) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    port = cfg.launch.master_port or free_port(cfg.launch.master_addr)
    os.environ.update(worker_env())
    launch_config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=cfg.launch.nproc_per_node,
        run_id=f"{cfg.run.name}-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint=f"{cfg.launch.master_addr}:{port}",
        max_restarts=cfg.launch.max_restarts,
        monitor_interval=0.5,
        signals_to_handle=SIGNALS_TO_HANDLE,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    started = time.time()
    try:
        elastic_launch(launch_config, sys.executable)(*worker_argv(cfg.run_dir))
    except SignalException as exc:
        # The agent got the signal, forwarded it and waited for the ranks' checkpoint.
        code = report_preemption(cfg.run_dir, started)
        if code is None:
            print(f"hiresgan: stopped by {exc.sigval.name} before a preemption checkpoint was written", file=sys.stderr)
            return 128 + int(exc.sigval)
        return code
    except ChildFailedError as exc:
        codes = {failure.exitcode for failure in exc.failures.values()}
        if PREEMPTED_EXIT in codes:
            # Only ranks were signalled (not this agent): the first rank to exit 75 fails the group
            # and the agent stops the others, which had finished the checkpoint already.
            code = report_preemption(cfg.run_dir, started)
            if code is not None:
                return code
        first = next(iter(exc.failures.values()), None)
        detail = f" (exit code {first.exitcode})" if first is not None else ""
        print(
            f"hiresgan: training failed: a rank exited with an error{detail}; see its traceback above", file=sys.stderr
        )
        return 1
    return 0
