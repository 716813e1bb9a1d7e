"""The Prometheus series every rank exports, listed once.

The trainer creates the CollectorRegistry and passes it in: no module-level mutable state. The
series are listed once, in `CATALOG` (the single source for the code, docs/MONITORING.md, the
dashboard and the alert rules; tests check all four agree). Names follow Prometheus conventions
(base units, `_total` counters, `_seconds`, `_bytes`); labels are the low-cardinality identity of
a rank (job, rank, local_rank, node, slurm_job_id), never the step.

Per-step updates take host-side numbers only (wall clock, batch sizes); device values (losses,
gradient norms) reach Prometheus on log steps, after the loop's one host sync.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    _g(
        "last_step_timestamp_seconds",
        "seconds",
        "Unix time this rank last finished a step (start of training before the first one)",
    ),
    _g(
        "evaluation_started_timestamp_seconds",
        "seconds",
        "Unix time the in-training evaluation now running started (0 when none runs); the stall alert waits for it",
    ),
    _h("step_duration_seconds", "seconds", "Wall time of one training step, data wait included", STEP_BUCKETS),
    _h("data_wait_seconds", "seconds", "Time a step waited for its batch from the data stream", WAIT_BUCKETS),
    _h(
        "phase_duration_seconds",
        "seconds",
        "Wall time per training phase (G_main, G_reg, D_main, D_reg)",
        STEP_BUCKETS,
        ("phase",),
    ),
    # Losses and regularizers (log steps; averaged over the log interval and over ranks)
    _g(
        "loss",
        "",
        "Loss per network and term (adversarial, path_length, r1), averaged over the log interval",
        ("network", "term"),
    ),
    _g(
        "discriminator_logit_mean", "", "Mean D output on real or generated images during a phase", ("network", "input")
    ),
    _g("path_length_mean", "", "Running mean of the path length (the path-length regularizer's target)"),
    _g(
        "grad_norm",
        "",
        "L2 norm of the network's gradient (after averaging over ranks), sampled on log steps",
        ("network",),
    ),
    _c(
        "skipped_steps",
        "steps",
        "Optimizer steps DeepSpeed skipped for non-finite gradients (fp16 overflow)",
        ("network",),
    ),
    _c("nonfinite_loss_logs", "logs", "Log intervals whose averaged loss was NaN or infinite", ("network",)),
    _g(
        "sample_diversity_ratio",
        "ratio",
        "Mode-collapse signal: pairwise distance of D features of fixed-latent G_ema samples over that of a real "
        "batch (about 1 healthy; falling toward 0: collapse)",
    ),
    _g(
        "validation_score",
        "",
        "A family's score of G_ema on held-out data at each sample grid (esrgan: sr_psnr, "
        "sr_ssim, sr_sharpness, bicubic_psnr, bicubic_ssim, bicubic_sharpness, sr_psnr_gain_db; rank 0)",
        ("metric",),
    ),
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
    _g(
        "last_checkpoint_timestamp_seconds",
        "seconds",
        "Unix time of the last complete checkpoint (or of the start of training before the first one)",
    ),
    _g("process_resident_memory_bytes", "bytes", "Resident memory of the training process"),
    _g("cuda_memory_allocated_bytes", "bytes", "CUDA memory held by tensors (GPU runs only)"),
    _g("cuda_memory_reserved_bytes", "bytes", "CUDA memory reserved by the caching allocator (GPU runs only)"),
    _g("world_size", "ranks", "Ranks in the job"),
    _g(
        "rank_info",
        "",
        "Always 1; labels gpu and Hostname join a rank to NVIDIA DCGM exporter series",
        ("gpu", "Hostname"),
    ),
)
# Loss terms that are not losses: routed to their own gauges by observe_log.
SCORE_INPUTS = {"real_score": "real", "fake_score": "fake"}
