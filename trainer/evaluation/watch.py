"""Periodic evaluation beside training: `hiresgan eval RUN_DIR --watch --every-kimg N`.

A separate process follows a run's checkpoints and evaluates each one that crosses a multiple of
`--every-kimg`, so the training ranks never pause for metrics and a slow or crashing evaluation
cannot hurt training. Each result is appended to `<run>/eval.jsonl` (one record per checkpoint,
skipped on restart when already there) and published as Prometheus gauges on `--port`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Optional

from prometheus_client import CollectorRegistry, Gauge, start_http_server

log = logging.getLogger(__name__)

# report key -> (Prometheus name, help); ratios in 0..1 get the _ratio suffix.
GAUGES = {
    "fid": ("hiresgan_eval_fid", "Frechet distance of generated vs real features"),
    "kid": ("hiresgan_eval_kid", "Kernel inception distance (unbiased MMD^2)"),
    "precision": ("hiresgan_eval_precision_ratio", "Share of generated samples inside the real manifold"),
    "recall": ("hiresgan_eval_recall_ratio", "Share of real samples inside the generated manifold"),
    "is": ("hiresgan_eval_inception_score", "Inception score of generated samples"),
    "kimg": ("hiresgan_eval_kimg", "Training progress (kimg) of the last evaluated checkpoint"),
    "cas": (
        "hiresgan_eval_cas_ratio",
        "Classification Accuracy Score: real test accuracy of a classifier trained on generated images only",
    ),
    "cas_real": ("hiresgan_eval_cas_real_ratio", "CAS ceiling: the same classifier trained on as many real images"),
    "cas_fake_read": (
        "hiresgan_eval_cas_fake_read_ratio",
        "Share of generated images the ceiling classifier reads as their class (low: class leakage)",
    ),
    "alignment_seen": (
        "hiresgan_eval_alignment_seen_ratio",
        "Text2img: share of samples for seen (digit, ink) pairs read back with digit, ink and background as prompted",
    ),
    "alignment_withheld": (
        "hiresgan_eval_alignment_withheld_ratio",
        "Text2img: share of samples for (digit, ink) pairs never trained on read back with all three as prompted",
    ),
}
# Per-class CAS (report keys -> value of the `train` label): a class's real test accuracy.
CLASS_GAUGE = (
    "hiresgan_eval_cas_class_ratio",
    "Per-class real test accuracy of the CAS classifier trained on "
    "generated (train=synthetic) or real (train=real) images",
)
CLASS_REPORTS = {"cas_per_class": "synthetic", "cas_real_per_class": "real"}
# Per-attribute alignment (record keys alignment_{split}_{attribute}, from text_alignment.record_fields).
ALIGNMENT_GAUGE = (
    "hiresgan_eval_alignment_attribute_ratio",
    "Text2img: share of samples whose digit, ink or background (attribute) is read back as prompted, "
    "for seen or withheld (digit, ink) pairs (split)",
)
ALIGNMENT_REPORTS = {
    f"alignment_{split}_{attribute}": (split, attribute)
    for split in ("seen", "withheld")
    for attribute in ("digit", "ink", "background")
}


class EvalGauges:
    def __init__(self, registry: CollectorRegistry, *, job: str, features: str):
        self.labels = {"job": job, "features": features}
        self.gauges = {
            key: Gauge(name, text, list(self.labels), registry=registry) for key, (name, text) in GAUGES.items()
        }
        self.class_gauge = Gauge(*CLASS_GAUGE, [*self.labels, "class", "train"], registry=registry)
        self.alignment_gauge = Gauge(*ALIGNMENT_GAUGE, [*self.labels, "split", "attribute"], registry=registry)

    def update(self, record: dict) -> None:
        for key, gauge in self.gauges.items():
            if key in record:
                gauge.labels(**self.labels).set(record[key])
        for key, train in CLASS_REPORTS.items():
            for name, value in (record.get(key) or {}).items():
                if value is not None:
                    self.class_gauge.labels(**self.labels, **{"class": name, "train": train}).set(value)
        for key, (split, attribute) in ALIGNMENT_REPORTS.items():
            if key in record:
                self.alignment_gauge.labels(**self.labels, split=split, attribute=attribute).set(record[key])


def _done(log_path: Path) -> set[str]:
    if not log_path.is_file():
        return set()
    # Records written by training itself (eval.every_kimg) name a step, not a checkpoint.
    return {json.loads(line).get("checkpoint") for line in log_path.read_text().splitlines() if line.strip()} - {None}


def evaluate_new_checkpoints(
    run_dir: Path, data: str, *, every_kimg: float, gauges: Optional[EvalGauges] = None, **eval_kwargs
) -> list[dict]:
    """Evaluate every verified checkpoint not yet in eval.jsonl whose kimg crosses a multiple of
    every_kimg since the previous one kept; returns the new records."""
    from trainer import checkpoint as ckpt
    from trainer.evaluation.run import evaluate
    from trainer.export import export_checkpoint

    run_dir = Path(run_dir)
    log_path = run_dir / "eval.jsonl"
    done = _done(log_path)
    records = []
    last_bucket = None
    for folder in reversed(ckpt.list_checkpoints(run_dir)):  # oldest first
        state = json.loads((folder / "state.json").read_text()) if (folder / "state.json").is_file() else {}
        kimg = state.get("images_seen", 0) / 1000
        bucket = int(kimg // every_kimg) if every_kimg > 0 else kimg
        if bucket == last_bucket or folder.name in done:
            last_bucket = bucket
            continue
        last_bucket = bucket
        if ckpt.verify(folder) is not None:
            log.warning("skipping damaged checkpoint %s", folder)
            continue
        export = export_checkpoint(folder, run_dir / "exports" / folder.name)
        record = {
            "checkpoint": folder.name,
            "step": state.get("step"),
            "kimg": kimg,
            "time": time.time(),
            **evaluate(export, data, **eval_kwargs),
        }
        with open(log_path, "a") as f:  # one line per record: a crash never leaves half of one
            f.write(json.dumps(record) + "\n")
        if gauges is not None:
            gauges.update(record)
        records.append(record)
    return records


def watch(
    run_dir: Path,
    data: str,
    *,
    every_kimg: float,
    port: int = 0,
    poll_seconds: float = 60.0,
    once: bool = False,
    features: str = "digits",
    **eval_kwargs,
) -> int:
    registry = CollectorRegistry()
    gauges = EvalGauges(registry, job=Path(run_dir).name, features=features)
    if port:
        start_http_server(port, registry=registry)
    while True:
        for record in evaluate_new_checkpoints(
            run_dir, data, every_kimg=every_kimg, gauges=gauges, features=features, **eval_kwargs
        ):
            print(
                json.dumps(
                    {k: record[k] for k in ("checkpoint", "kimg") if k in record}
                    | {k: record[k] for k in GAUGES if k in record}
                ),
                flush=True,
            )
        if once:
            return 0
        time.sleep(poll_seconds)
