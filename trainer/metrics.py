"""Training metrics: Prometheus (every rank, one HTTP port per local rank) and a JSONL log (rank 0).

The trainer creates the CollectorRegistry and passes it in: no module-level state. Names follow
Prometheus conventions (base units, `_total` counters, `_seconds`); labels are the low-cardinality
identity of a rank (job, rank, local_rank, node, slurm_job_id), never the step.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

PREFIX = "hiresgan"
IDENTITY_LABELS = ("job", "rank", "local_rank", "node", "slurm_job_id")
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


class MetricsError(RuntimeError):
    pass


class TrainingMetrics:
    """The Prometheus series of one rank."""

    def __init__(self, registry: CollectorRegistry, *, identity: dict[str, str]):
        self.registry = registry
        names = list(IDENTITY_LABELS)
        self.identity = {k: identity.get(k, "") for k in names}

        def counter(name, doc, extra=()):
            return Counter(f"{PREFIX}_{name}", doc, names + list(extra), registry=registry)

        def gauge(name, doc, extra=()):
            return Gauge(f"{PREFIX}_{name}", doc, names + list(extra), registry=registry)

        self._images = counter("images_seen", "Real images shown to D by this rank")
        self._steps = counter("steps", "Training steps (one batch each) completed")
        self._corrupt = counter("corrupt_samples", "Unreadable data samples skipped")
        self._kimg = gauge("progress_kimg", "Training progress in thousands of images (all ranks)")
        self._target_kimg = gauge("target_kimg", "Training length in kimg")
        self._world = gauge("world_size", "Ranks in the job")
        self._loss = gauge("loss", "Latest loss per network and term (averaged over a log interval)",
                           ("network", "term"))
        self._lr = gauge("learning_rate", "Optimizer learning rate", ("network",))
        self._ema_beta = gauge("ema_beta", "G_ema decay per step")
        self._ckpt_seconds = gauge("checkpoint_duration_seconds", "Wall time of the last checkpoint write")
        self._ckpt_time = gauge("last_checkpoint_timestamp_seconds", "Unix time of the last complete checkpoint")
        self._rss = gauge("process_resident_memory_bytes", "Resident memory of the training process")
        self._step_time = Histogram(f"{PREFIX}_step_duration_seconds", "Wall time of one training step",
                                    names, buckets=STEP_BUCKETS, registry=registry)
        self._data_wait = Histogram(f"{PREFIX}_data_wait_seconds", "Time a step waited for its batch",
                                    names, buckets=WAIT_BUCKETS, registry=registry)
        self._phase_time = Histogram(f"{PREFIX}_phase_duration_seconds", "Wall time per training phase",
                                     names + ["phase"], buckets=STEP_BUCKETS, registry=registry)

    def _l(self, metric, **extra):
        return metric.labels(**self.identity, **extra)

    def set_static(self, *, world_size: int, target_kimg: float) -> None:
        self._l(self._world).set(world_size)
        self._l(self._target_kimg).set(target_kimg)

    def observe_step(self, *, images: int, step_seconds: float, data_wait_seconds: float, skipped: int) -> None:
        """Called every step with host-side numbers only (no device sync)."""
        self._l(self._images).inc(images)
        self._l(self._steps).inc()
        self._l(self._step_time).observe(step_seconds)
        self._l(self._data_wait).observe(data_wait_seconds)
        if skipped:
            self._l(self._corrupt).inc(skipped)

    def observe_phase(self, phase: str, seconds: float) -> None:
        self._l(self._phase_time, phase=phase).observe(seconds)

    def observe_log(self, *, kimg: float, losses: dict[str, float], lrs: dict[str, float], ema_beta: float) -> None:
        """Called on log steps with values already moved to the host."""
        self._l(self._kimg).set(kimg)
        for key, value in losses.items():
            network, term = key.split("/", 1)
            self._l(self._loss, network=network, term=term).set(value)
        for network, lr in lrs.items():
            self._l(self._lr, network=network).set(lr)
        self._l(self._ema_beta).set(ema_beta)
        self._l(self._rss).set(_rss_bytes())

    def observe_checkpoint(self, seconds: float) -> None:
        self._l(self._ckpt_seconds).set(seconds)
        self._l(self._ckpt_time).set(time.time())


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def serve(registry: CollectorRegistry, *, port: int, bind: str):
    """Start this rank's HTTP endpoint; a clear error names metrics.port when it is taken."""
    try:
        server, _thread = start_http_server(port, addr=bind, registry=registry)
    except OSError as exc:
        raise MetricsError(
            f"metrics endpoint: cannot bind {bind}:{port} ({exc.strerror}); set metrics.port to a free "
            f"base port (local rank r uses port + r) or metrics.port=0 to disable") from None
    return server


def write_targets_file(path: Path, *, targets: list[str], labels: dict[str, str]) -> None:
    """A Prometheus file-service-discovery targets file for this node's ranks."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps([{"targets": targets, "labels": labels}], indent=2))
    os.replace(tmp, path)


class JsonlLog:
    """Append-only metrics log, one JSON object per log step (rank 0 only)."""

    def __init__(self, path: Optional[Path]):
        self._file = open(path, "a", buffering=1) if path is not None else None

    def write(self, record: dict) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
