"""One rank's Prometheus series (`TrainingMetrics`), built from `trainer.telemetry.catalog.CATALOG`.

Per-step updates take host-side numbers only (wall clock, batch sizes); device values (losses,
gradient norms) arrive on log steps, after the loop's one host sync.
"""

from __future__ import annotations

import os
import time
from typing import Mapping, Optional

import torch
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from trainer.telemetry.catalog import CATALOG, IDENTITY_LABELS, PREFIX, SCORE_INPUTS


class TrainingMetrics:
    """The Prometheus series of one rank, built from CATALOG."""

    def __init__(self, registry: CollectorRegistry, *, identity: Mapping[str, str], gpu: str = ""):
        self.registry = registry
        self.identity = {k: str(identity.get(k, "")) for k in IDENTITY_LABELS}
        self._m = {}
        for spec in CATALOG:
            labels = list(IDENTITY_LABELS) + list(spec.labels)
            name = f"{PREFIX}_{spec.key}"
            if spec.kind == "counter":
                self._m[spec.key] = Counter(name, spec.help, labels, registry=registry)
            elif spec.kind == "gauge":
                self._m[spec.key] = Gauge(name, spec.help, labels, registry=registry)
            else:
                self._m[spec.key] = Histogram(name, spec.help, labels, buckets=spec.buckets, registry=registry)
        # Children of the per-step series are resolved once: labels() does a dict lookup under a lock.
        self._step = {
            k: self._l(k)
            for k in (
                "images_seen",
                "steps",
                "step_duration_seconds",
                "data_wait_seconds",
                "last_step_timestamp_seconds",
                "corrupt_samples",
            )
        }
        self._phases: dict[str, object] = {}
        self._skipped_seen: dict[str, int] = {}
        self._l("rank_info", gpu=gpu, Hostname=self.identity["node"]).set(1)
        # The endpoint may be scraped before set_static(); an unset timestamp would read as 0 (1970)
        # and the stall and checkpoint-age alerts would see a run silent for decades.
        self._mark_start()

    def _mark_start(self) -> None:
        now = time.time()
        self._l("last_step_timestamp_seconds").set(now)
        self._l("last_checkpoint_timestamp_seconds").set(now)
        self._l("evaluation_started_timestamp_seconds").set(0)

    def _l(self, key: str, **extra):
        return self._m[key].labels(**self.identity, **extra)

    def set_static(
        self,
        *,
        world_size: int,
        target_kimg: float,
        resolution: int,
        fade_in_alpha: float = 1.0,
        augment_probability: float = 0.0,
        skipped_steps: Optional[Mapping[str, int]] = None,
    ) -> None:
        """Once at the start of training; start time doubles as the first 'last step/checkpoint'.
        `skipped_steps`: the engines' counts restored by a resume (not news of this process)."""
        self._skipped_seen.update(skipped_steps or {})
        self._l("world_size").set(world_size)
        self._l("target_kimg").set(target_kimg)
        self._l("resolution_pixels").set(resolution)
        self._l("fade_in_alpha").set(fade_in_alpha)
        self._l("augment_probability").set(augment_probability)
        self._mark_start()
        for network in ("G", "D"):
            self._l("skipped_steps", network=network)  # exported as 0 from the start
            self._l("nonfinite_loss_logs", network=network)
        self._step["corrupt_samples"]  # noqa: B018 - resolving the child exports it as 0
        self.observe_memory()

    def observe_step(self, *, images: int, step_seconds: float, data_wait_seconds: float, skipped: int) -> None:
        """Every step, host-side numbers only (no device sync)."""
        s = self._step
        s["images_seen"].inc(images)
        s["steps"].inc()
        s["step_duration_seconds"].observe(step_seconds)
        s["data_wait_seconds"].observe(data_wait_seconds)
        s["last_step_timestamp_seconds"].set(time.time())
        if skipped:
            s["corrupt_samples"].inc(skipped)

    def observe_phase(self, phase: str, seconds: float) -> None:
        child = self._phases.get(phase)
        if child is None:
            child = self._phases[phase] = self._l("phase_duration_seconds", phase=phase)
        child.observe(seconds)

    def observe_log(
        self,
        *,
        kimg: float,
        losses: Mapping[str, float],
        lrs: Mapping[str, float],
        ema_beta: float,
        grad_norms: Optional[Mapping[str, float]] = None,
        skipped_steps: Optional[Mapping[str, int]] = None,
        loss_scales: Optional[Mapping[str, float]] = None,
        augment_probability: Optional[float] = None,
        diversity_ratio: Optional[float] = None,
    ) -> None:
        """On log steps, with values already on the host. `losses` maps 'network/term' to the
        interval mean; `skipped_steps` are the engines' cumulative counts."""
        self._l("progress_kimg").set(kimg)
        nonfinite: set[str] = set()
        for key, value in losses.items():
            network, term = key.split("/", 1)
            if value != value or value in (float("inf"), float("-inf")):
                nonfinite.add(network)
            if term in SCORE_INPUTS:
                self._l("discriminator_logit_mean", network=network, input=SCORE_INPUTS[term]).set(value)
            elif term == "real_sign":
                self._l("ada_rt").set(value)
            elif term == "pl_mean":
                self._l("path_length_mean").set(value)
            else:
                self._l("loss", network=network, term=term).set(value)
        for network in nonfinite:
            self._l("nonfinite_loss_logs", network=network).inc()
        for network, lr in lrs.items():
            self._l("learning_rate", network=network).set(lr)
        for network, norm in (grad_norms or {}).items():
            self._l("grad_norm", network=network).set(norm)
        for network, total in (skipped_steps or {}).items():
            # The engine's count is cumulative (and restored on resume); the counter adds the news.
            delta = total - self._skipped_seen.get(network, 0)
            if delta > 0:
                self._l("skipped_steps", network=network).inc(delta)
            self._skipped_seen[network] = total
        for network, scale in (loss_scales or {}).items():
            self._l("loss_scale", network=network).set(scale)
        if augment_probability is not None:
            self._l("augment_probability").set(augment_probability)
        if diversity_ratio is not None:
            self._l("sample_diversity_ratio").set(diversity_ratio)
        self._l("ema_beta").set(ema_beta)
        self.observe_memory()

    def observe_memory(self) -> None:
        self._l("process_resident_memory_bytes").set(_rss_bytes())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            # Allocator statistics are host-side counters: no device sync.
            self._l("cuda_memory_allocated_bytes").set(torch.cuda.memory_allocated())
            self._l("cuda_memory_reserved_bytes").set(torch.cuda.memory_reserved())

    def observe_validation(self, scores: Mapping[str, float]) -> None:
        """A recipe's validation scores (rank 0, at sample grids); one series per metric name."""
        for metric, value in scores.items():
            self._l("validation_score", metric=metric).set(value)

    def observe_evaluation(self, running: bool) -> None:
        """An in-training evaluation starts (True) or ends (False): steps pause meanwhile."""
        self._l("evaluation_started_timestamp_seconds").set(time.time() if running else 0)

    def observe_checkpoint(self, seconds: float) -> None:
        self._l("checkpoint_duration_seconds").set(seconds)
        self._l("last_checkpoint_timestamp_seconds").set(time.time())


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
