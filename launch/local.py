"""Start `launch.nproc_per_node` local ranks under torch's elastic agent (what torchrun runs),
which also restarts the worker group up to `launch.max_restarts` times after a failure."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

from trainer.config import Config
from trainer.distributed import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def worker_argv(run_dir: Path) -> list[str]:
    return ["-m", "trainer.worker", str(run_dir)]


def worker_env() -> dict[str, str]:
    """Workers import this source tree, whatever their working directory."""
    path = os.environ.get("PYTHONPATH", "")
    parts = [str(PROJECT_ROOT)] + [p for p in path.split(os.pathsep) if p and p != str(PROJECT_ROOT)]
    return {"PYTHONPATH": os.pathsep.join(parts)}


def run_local(cfg: Config) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    port = cfg.launch.master_port or free_port(cfg.launch.master_addr)
    os.environ.update(worker_env())
    launch_config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=cfg.launch.nproc_per_node,
        run_id=f"{cfg.run.name}-{uuid.uuid4().hex[:8]}", rdzv_backend="c10d",
        rdzv_endpoint=f"{cfg.launch.master_addr}:{port}", max_restarts=cfg.launch.max_restarts,
        monitor_interval=0.5)
    try:
        elastic_launch(launch_config, sys.executable)(*worker_argv(cfg.run_dir))
    except ChildFailedError as exc:
        first = next(iter(exc.failures.values()), None)
        detail = f" (exit code {first.exitcode})" if first is not None else ""
        print(f"hiresgan: training failed: a rank exited with an error{detail}; see its traceback above",
              file=sys.stderr)
        return 1
    return 0
