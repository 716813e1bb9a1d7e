"""Training metrics: Prometheus (every rank, one HTTP port per local rank) and a JSONL log (rank 0).

The trainer creates the CollectorRegistry and passes it in: no module-level mutable state. The
series are listed once, in `CATALOG` (the single source for the code, docs/MONITORING.md, the
dashboard and the alert rules; tests check all four agree). Names follow Prometheus conventions
(base units, `_total` counters, `_seconds`, `_bytes`); labels are the low-cardinality identity of
a rank (job, rank, local_rank, node, slurm_job_id), never the step.

Per-step updates take host-side numbers only (wall clock, batch sizes); device values (losses,
gradient norms) reach Prometheus on log steps, after the loop's one host sync.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import torch
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

PREFIX = "hiresgan"
IDENTITY_LABELS = ("job", "rank", "local_rank", "node", "slurm_job_id")
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
TARGETS_DIR = "prometheus-targets"  # under the run directory; one file per rank (file_sd)


class MetricsError(ValueError):
    """Bad metrics settings (a taken port): a user error, reported as one line by the CLI."""


@dataclass(frozen=True)
class MetricSpec:
    """One series family of the catalog. `name` is without the prefix and, for counters, without
    `_total` (prometheus_client appends it)."""

    key: str
    kind: str  # counter | gauge | histogram
    unit: str  # for the docs: seconds, bytes, images, ratio, ... ("" when dimensionless)
    labels: tuple[str, ...]  # beyond the identity labels
    help: str
    buckets: tuple[float, ...] = ()

    @property
    def name(self) -> str:
        """The exposed family name (what PromQL uses, minus _bucket/_sum/_count for histograms)."""
        return f"{PREFIX}_{self.key}" + ("_total" if self.kind == "counter" else "")


def _c(key, unit, help, labels=()):
    return MetricSpec(key, "counter", unit, tuple(labels), help)


def _g(key, unit, help, labels=()):
    return MetricSpec(key, "gauge", unit, tuple(labels), help)


def _h(key, unit, help, buckets, labels=()):
    return MetricSpec(key, "histogram", unit, tuple(labels), help, tuple(buckets))


CATALOG: tuple[MetricSpec, ...] = (
    # Progress and throughput
    _c("images_seen", "images", "Real images shown to D by this rank"),
    _c("steps", "steps", "Training steps (one batch each) completed by this rank"),
    _g("progress_kimg", "kimg", "Training progress in thousands of real images, all ranks together"),
    _g("target_kimg", "kimg", "Training length in kimg (progress_kimg / target_kimg is the fraction done)"),
    _g("last_step_timestamp_seconds", "seconds",
       "Unix time this rank last finished a step (start of training before the first one)"),
    _h("step_duration_seconds", "seconds", "Wall time of one training step, data wait included", STEP_BUCKETS),
    _h("data_wait_seconds", "seconds", "Time a step waited for its batch from the data stream", WAIT_BUCKETS),
    _h("phase_duration_seconds", "seconds", "Wall time per training phase (G_main, G_reg, D_main, D_reg)",
       STEP_BUCKETS, ("phase",)),
    # Losses and regularizers (log steps; averaged over the log interval and over ranks)
    _g("loss", "", "Loss per network and term (adversarial, path_length, r1), averaged over the log interval",
       ("network", "term")),
    _g("discriminator_logit_mean", "", "Mean D output on real or generated images during a phase",
       ("network", "input")),
    _g("path_length_mean", "", "Running mean of the path length (the path-length regularizer's target)"),
    _g("grad_norm", "", "L2 norm of the network's gradient (after averaging over ranks), sampled on log steps",
       ("network",)),
    _c("skipped_steps", "steps", "Optimizer steps DeepSpeed skipped for non-finite gradients (fp16 overflow)",
       ("network",)),
    _c("nonfinite_loss_logs", "logs", "Log intervals whose averaged loss was NaN or infinite", ("network",)),
    _g("sample_diversity_ratio", "ratio",
       "Mode-collapse signal: pairwise distance of D features of fixed-latent G_ema samples over that of a real "
       "batch (about 1 healthy; falling toward 0: collapse)"),
    # Augmentation and discriminator overfitting
    _g("augment_probability", "ratio", "Augmentation probability p (0 when the family has no ADA)"),
    _g("ada_rt", "ratio", "ADA overfitting signal r_t = E[sign(D(real))], -1..1; ADA targets 0.6"),
    # Schedule
    _g("resolution_pixels", "pixels", "Output resolution currently trained (side length)"),
    _g("fade_in_alpha", "ratio", "Fade-in weight of the newest resolution (1 when not growing)"),
    _g("ema_beta", "ratio", "G_ema decay per step"),
    _g("learning_rate", "", "Optimizer learning rate", ("network",)),
    _g("loss_scale", "", "Loss scale of mixed precision (1 for fp32 and bf16, which need none)", ("network",)),
    # Data, checkpoints, resources, topology
    _c("corrupt_samples", "samples", "Unreadable data samples skipped"),
    _g("checkpoint_duration_seconds", "seconds", "Wall time of the last checkpoint write"),
    _g("last_checkpoint_timestamp_seconds", "seconds",
       "Unix time of the last complete checkpoint (or of the start of training before the first one)"),
    _g("process_resident_memory_bytes", "bytes", "Resident memory of the training process"),
    _g("cuda_memory_allocated_bytes", "bytes", "CUDA memory held by tensors (GPU runs only)"),
    _g("cuda_memory_reserved_bytes", "bytes", "CUDA memory reserved by the caching allocator (GPU runs only)"),
    _g("world_size", "ranks", "Ranks in the job"),
    _g("rank_info", "", "Always 1; labels gpu and Hostname join a rank to NVIDIA DCGM exporter series",
       ("gpu", "Hostname")),
)
# Loss terms that are not losses: routed to their own gauges by observe_log.
_SCORE_INPUTS = {"real_score": "real", "fake_score": "fake"}


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
        self._step = {k: self._l(k) for k in ("images_seen", "steps", "step_duration_seconds",
                                                "data_wait_seconds", "last_step_timestamp_seconds",
                                                "corrupt_samples")}
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

    def _l(self, key: str, **extra):
        return self._m[key].labels(**self.identity, **extra)

    def set_static(self, *, world_size: int, target_kimg: float, resolution: int, fade_in_alpha: float = 1.0,
                   augment_probability: float = 0.0, skipped_steps: Optional[Mapping[str, int]] = None) -> None:
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

    def observe_log(self, *, kimg: float, losses: Mapping[str, float], lrs: Mapping[str, float], ema_beta: float,
                    grad_norms: Optional[Mapping[str, float]] = None,
                    skipped_steps: Optional[Mapping[str, int]] = None,
                    loss_scales: Optional[Mapping[str, float]] = None,
                    augment_probability: Optional[float] = None, diversity_ratio: Optional[float] = None) -> None:
        """On log steps, with values already on the host. `losses` maps 'network/term' to the
        interval mean; `skipped_steps` are the engines' cumulative counts."""
        self._l("progress_kimg").set(kimg)
        nonfinite: set[str] = set()
        for key, value in losses.items():
            network, term = key.split("/", 1)
            if value != value or value in (float("inf"), float("-inf")):
                nonfinite.add(network)
            if term in _SCORE_INPUTS:
                self._l("discriminator_logit_mean", network=network, input=_SCORE_INPUTS[term]).set(value)
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

    def observe_checkpoint(self, seconds: float) -> None:
        self._l("checkpoint_duration_seconds").set(seconds)
        self._l("last_checkpoint_timestamp_seconds").set(time.time())


def rank_identity(*, job: str, rank: int, local_rank: int, node: str) -> dict[str, str]:
    """The identity labels of a rank (the SLURM job id from the environment, '' outside SLURM)."""
    return {"job": job, "rank": str(rank), "local_rank": str(local_rank), "node": node,
            "slurm_job_id": os.environ.get("SLURM_JOB_ID", "")}


def grad_norm(module: torch.nn.Module) -> Optional[torch.Tensor]:
    """L2 norm of the gradients held in `.grad` (a device tensor: read it on a log step only).
    None when the gradients live elsewhere (ZeRO-2 keeps them in its own buckets)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return None
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())


def engine_stats(engines: Mapping[str, object], *, measured: Mapping[str, Optional[torch.Tensor]]) -> dict:
    """observe_log arguments from the DeepSpeed engines (log steps only: reads device values).

    Gradient norms: `measured` (from `grad_norm` before the step) where `.grad` held them, else the
    norm the engine computed itself (ZeRO-2, bf16). Skipped steps are the engines' cumulative
    count; fp32 and bf16 do not scale the loss (scale 1)."""
    norms, scales = {}, {}
    for network, engine in engines.items():
        norm = measured.get(network)
        if norm is None and hasattr(engine, "get_global_grad_norm"):
            norm = engine.get_global_grad_norm()
        if norm is not None:
            norms[network] = float(norm)
        scale = getattr(getattr(engine, "optimizer", None), "cur_scale", None)
        scales[network] = float(scale) if scale is not None else 1.0
    return {"grad_norms": norms, "loss_scales": scales,
            "skipped_steps": {n: int(getattr(e, "skipped_steps", 0)) for n, e in engines.items()}}


def gpu_label(local_rank: int) -> str:
    """The physical GPU index DCGM reports for this rank's device ('' on CPU)."""
    if not torch.cuda.is_available():
        return ""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if local_rank < len(visible):
        return visible[local_rank]
    return str(local_rank)


class DiversityProbe:
    """A live mode-collapse signal, measured on every `every`-th log step.

    The mean pairwise distance between D's penultimate features (the input of its logit layer) of
    G_ema samples from fixed latents, divided by the same for the real images of the current
    batch, generated with the real batch's labels so classes match. A healthy generator is about
    as diverse as the data (near 1, noisy with small batches); a generator collapsing onto a few
    modes drives it toward 0 while the losses can look fine. Costs one G_ema and two D forwards of
    one per-rank batch per measurement. Needs D to have `epilogue.fc` (StyleGAN2's D); for other
    families `ratio` returns None."""

    def __init__(self, *, batch: int, z_dim: int, every: int = 5, seed: int = 0x5EED):
        self.every, self._logs = every, 0
        self.z = torch.randn([batch, z_dim], generator=torch.Generator().manual_seed(seed))

    def due(self) -> bool:
        """Call once per log step; True on every `every`-th one (the first included)."""
        self._logs += 1
        return (self._logs - 1) % self.every == 0

    @torch.no_grad()
    def ratio(self, G_ema, D, real: torch.Tensor, real_c: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        layer = getattr(getattr(D, "epilogue", None), "fc", None)
        if layer is None or len(real) < 2:
            return None
        n = min(len(real), len(self.z))
        z = self.z[:n].to(real.device)
        c = None if real_c is None else real_c[:n].float()
        fake = G_ema(z, c, noise_mode="const")
        spreads = []
        for images in (fake, real[:n]):
            captured = []
            hook = layer.register_forward_hook(lambda _m, _i, out: captured.append(out.float().flatten(1)))
            try:
                D(images, None if real_c is None else real_c[:n])
            finally:
                hook.remove()
            spreads.append(torch.pdist(captured[0]).mean())
        return spreads[0] / spreads[1].clamp_min(1e-12)


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


def scrape_address(*, bind: str, node: str, port: int) -> str:
    """Where Prometheus reaches this rank: the bind address, or the hostname for a wildcard bind."""
    host = node if bind in ("", "0.0.0.0", "::") else bind
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def target_path(run_dir: Path, rank: int) -> Path:
    return Path(run_dir) / TARGETS_DIR / f"rank-{rank:05d}.json"


def write_targets_file(path: Path, *, targets: list[str], labels: Mapping[str, str]) -> None:
    """A Prometheus file-service-discovery targets file, replaced atomically (Prometheus watches
    the folder and must never read half a file). Empty label values are left out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps([{"targets": targets, "labels": {k: v for k, v in labels.items() if v}}], indent=2))
    os.replace(tmp, path)


class RankEndpoint:
    """This rank's /metrics server plus its file_sd entry in the run directory.

    One file per rank (`prometheus-targets/rank-NNNNN.json`): ranks on different nodes never write
    the same file, and Prometheus reads them all with one glob. The file is removed on a clean
    exit, so a finished run leaves no `up == 0` behind; after a crash it stays and the rank-down
    alert fires. The identity labels go on the target too, so `up` carries job and rank."""

    def __init__(self, registry: CollectorRegistry, *, run_dir: Path, port: int, bind: str,
                 identity: Mapping[str, str]):
        self.scrapes = ScrapeClock()
        registry.register(self.scrapes)
        self.server = serve(registry, port=port, bind=bind)
        self.address = scrape_address(bind=bind, node=identity.get("node", ""), port=port)
        self.path = target_path(run_dir, int(identity["rank"]))
        write_targets_file(self.path, targets=[self.address], labels=identity)
        log.info("metrics: http://%s/metrics (targets file %s)", self.address, self.path)

    def close(self, final_scrape_wait: float = 0.0) -> None:
        """Withdraw the target and stop serving. With a wait, first keep serving (target in place)
        until a scrape starts after this call, so Prometheus records the final counters, or until
        the wait runs out (no Prometheus, or one that scrapes rarely)."""
        asked = time.monotonic()
        while self.scrapes.last_started < asked and time.monotonic() - asked < final_scrape_wait:
            time.sleep(0.05)
        self.path.unlink(missing_ok=True)
        self.server.shutdown()
        self.server.server_close()  # shutdown() only stops the loop; this releases the port


class ScrapeClock:
    """A collector that exports nothing and remembers when the registry was last collected, i.e.
    when the last scrape started (prometheus_client collects the registry once per request)."""

    def __init__(self):
        self.last_started = float("-inf")

    def collect(self):
        self.last_started = time.monotonic()
        return []


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
