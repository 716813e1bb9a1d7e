"""One training rank: join the process group, train, export, leave.

Started by the launcher's elastic agent, by an external torchrun, or by srun. Reads the resolved
config of its run directory (written by the launcher before any rank starts).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import torch


def _threads(cfg, local_world_size: int) -> int:
    if cfg.train.threads:
        return cfg.train.threads
    return max(1, (os.cpu_count() or 1) // max(1, local_world_size))


def run_worker(run_dir: Path) -> int:
    from prometheus_client import CollectorRegistry

    from trainer import checkpoint, distributed, metrics
    from trainer.config import load_run_config
    from trainer.loop import Trainer

    cfg = load_run_config(run_dir)
    env = distributed.init_distributed(cfg.launch.backend)
    logging.basicConfig(level=logging.INFO if env.is_main else logging.WARNING,
                        format=f"[rank {env.rank}] %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(_threads(cfg, env.local_world_size))
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True)

    registry = CollectorRegistry()
    endpoint = None
    if cfg.metrics.port:  # /metrics on port + local rank, and a file_sd entry under the run dir
        identity = metrics.rank_identity(job=cfg.metrics.job or cfg.run.name, rank=env.rank,
                                         local_rank=env.local_rank, node=env.node)
        endpoint = metrics.RankEndpoint(registry, run_dir=cfg.run_dir, port=cfg.metrics.port + env.local_rank,
                                        bind=cfg.metrics.bind, identity=identity)

    # Rank 0 picks the checkpoint (verifying checksums once) and tells the others.
    resume_from = None
    if env.is_main and cfg.run.resume != "none":
        source = cfg.run_dir if cfg.run.resume == "auto" else Path(cfg.run.resume)
        found = checkpoint.find_resumable(source)
        resume_from = str(found) if found else None
    resume_from = distributed.broadcast_object(resume_from)

    trainer = Trainer(cfg, env, registry=registry, resume_from=Path(resume_from) if resume_from else None)
    try:
        trainer.run()
    finally:
        trainer.close()
    distributed.barrier()
    distributed.shutdown()
    if endpoint is not None:
        endpoint.close()  # a clean finish withdraws the target (a crash leaves it: rank-down alert)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="hiresgan training worker (one rank)")
    parser.add_argument("run_dir", type=Path, help="run directory holding config.json")
    args = parser.parse_args(argv)
    from trainer.metrics import MetricsError

    try:
        return run_worker(args.run_dir)
    except MetricsError as exc:  # e.g. a taken port: one line that names the key, no traceback
        print(f"hiresgan: error: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
