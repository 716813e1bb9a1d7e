"""One training rank: join the process group, train, export, leave.

Started by the launcher's elastic agent, by an external torchrun, or by srun. Reads the resolved
config of its run directory (written by the launcher before any rank starts).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import torch

import kernels
from trainer.cpu_budget import cpu_max_texts, rank_threads


def _threads(cfg, local_world_size: int) -> int:
    if cfg.train.threads:
        return cfg.train.threads
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity masks (macOS)
        cpus = os.cpu_count() or 1
    return rank_threads(local_world_size, cpus=cpus, cpu_max=cpu_max_texts())


def run_worker(run_dir: Path) -> int:
    from prometheus_client import CollectorRegistry

    from trainer import checkpoint, distributed, preemption
    from trainer.config import load_run_config
    from trainer.loop import Trainer
    from trainer.telemetry.endpoint import RankEndpoint, resolve_bind
    from trainer.telemetry.probes import rank_identity

    cfg = load_run_config(run_dir)
    env = distributed.init_distributed(cfg.launch.backend)
    logging.basicConfig(
        level=logging.INFO if env.is_main else logging.WARNING,
        format=f"[rank {env.rank}] %(levelname)s %(name)s: %(message)s",
    )
    threads = _threads(cfg, env.local_world_size)
    torch.set_num_threads(threads)
    try:  # the inter-op pool (default: one thread per core) would oversubscribe the rank's share
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set, or inter-op work already ran in this process
        pass
    kernels.set_parity_check(cfg.train.kernel_check)  # first-use check of the Triton ops (kernels/guard.py)
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True)

    registry = CollectorRegistry()
    endpoint = None
    if cfg.metrics.port:  # /metrics on port + local rank, and a file_sd entry under the run dir
        identity = rank_identity(
            job=cfg.metrics.job or cfg.run.name, rank=env.rank, local_rank=env.local_rank, node=env.node
        )
        bind = resolve_bind(cfg.metrics.bind, multi_node=env.world_size > env.local_world_size)
        endpoint = RankEndpoint(
            registry,
            run_dir=cfg.run_dir,
            port=cfg.metrics.port + env.local_rank,
            bind=bind,
            identity=identity,
            port_stride=env.local_world_size,
        )

    if env.is_main:
        preemption.clear_marker(cfg.run_dir)  # a marker from an earlier, resumed interruption

    # Rank 0 picks the checkpoint (verifying checksums once) and tells the others.
    resume_from = None
    if env.is_main and cfg.run.resume != "none":
        source = cfg.run_dir if cfg.run.resume == "auto" else Path(cfg.run.resume)
        found = checkpoint.find_resumable(source)
        resume_from = str(found) if found else None
    resume_from = distributed.broadcast_object(resume_from)

    watcher = preemption.PreemptionWatcher().install()
    with preemption.signals_blocked(watcher.signals):  # the loader workers started inside keep them blocked
        trainer = Trainer(
            cfg, env, registry=registry, resume_from=Path(resume_from) if resume_from else None, preemption=watcher
        )
    try:
        trainer.run()
    finally:
        trainer.close()
    watcher.close()
    code = _after_preemption(cfg, env, trainer, watcher) if trainer.preempted else 0
    distributed.barrier()
    distributed.shutdown()
    if endpoint is not None:
        # A clean finish or a preemption withdraws the target (a crash leaves it: rank-down alert).
        endpoint.close(cfg.metrics.final_scrape_wait)
    return code


def _after_preemption(cfg, env, trainer, watcher) -> int:
    """The checkpoint is complete on every rank: rank 0 records it and, under SLURM, requeues."""
    from trainer import checkpoint, preemption

    if env.is_main:
        newest = checkpoint.list_checkpoints(cfg.run_dir)
        seconds = time.monotonic() - watcher.received_at if watcher.received_at else None
        requeued = preemption.requeue_wanted()
        # Marker first: once SLURM has the requeue it may end this allocation at any moment.
        preemption.write_marker(
            cfg.run_dir,
            step=trainer.progress.step,
            kimg=trainer.progress.kimg,
            signal_name=watcher.signal_name,
            checkpoint=newest[0] if newest else None,
            requeued=requeued,
            seconds_to_checkpoint=seconds,
        )
        why = watcher.signal_name if watcher.received else "a signal to another rank"
        print(
            f"hiresgan: preempted ({why}) at step {trainer.progress.step} "
            f"({trainer.progress.kimg:.3f} kimg); checkpoint {newest[0] if newest else '?'} written "
            f"{seconds if seconds is not None else float('nan'):.1f} s after the signal",
            flush=True,
        )
        if requeued:
            preemption.requeue_slurm_job()
    return preemption.PREEMPTED_EXIT


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="hiresgan training worker (one rank)")
    parser.add_argument("run_dir", type=Path, help="run directory holding config.json")
    args = parser.parse_args(argv)
    from trainer.telemetry.catalog import MetricsError

    try:
        return run_worker(args.run_dir)
    except MetricsError as exc:  # e.g. a taken port: one line that names the key, no traceback
        print(f"hiresgan: error: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
