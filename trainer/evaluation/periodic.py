"""Evaluation inside training: every `eval.every_kimg` and at the end, on all ranks in parallel.

The Trainer calls `after_step` once per step and `at_end` once. When progress crosses a multiple of
`eval.every_kimg`, every rank renders its share of G_ema's fakes (and, the first time, of the real
images, unless the real-feature cache already holds them); rank 0 gathers, computes the metrics,
appends one record to `<run>/eval.jsonl` and sets the `hiresgan_eval_*` gauges (the same series,
names and labels as the `hiresgan eval --watch` sidecar, from watch.GAUGES).

It must not change training: G_ema is put in eval mode and its mode restored, and the global RNG
states are forked around the work, so a run with evaluation follows the same random streams as one
without (exact resume still holds). The fakes use their own seeded generators (seeds 0..N-1, as
`hiresgan eval`), so a record equals `hiresgan eval` on the export of the same G_ema.

`alignment` (text2img on the colour digits) runs on rank 0 only, after the feature metrics if any:
all 560 prompts, `eval.alignment_samples` seeds each, read back by text_alignment's attribute
reader; its record keys equal `python -m trainer.evaluation.text_alignment` on the same export.
With alignment alone no feature network is built and no real images are read.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Callable, Optional

import torch
from prometheus_client import CollectorRegistry

from trainer.config import Config
from trainer.distributed import DistEnv

log = logging.getLogger(__name__)

# Record keys in the log line of each evaluation.
LOGGED = ("fid", "kid", "precision", "recall", "is", "alignment_seen", "alignment_withheld")


class PeriodicEval:
    def __init__(
        self, cfg: Config, env: DistEnv, G_ema: torch.nn.Module, *, registry: Optional[CollectorRegistry] = None
    ):
        e = cfg.eval
        self.every_kimg, self.env, self.G = e.every_kimg, env, G_ema
        self.batch_size = cfg.train.batch_size
        self.last_step: Optional[int] = None
        # Told True/False around each evaluation (the Trainer's metrics: steps pause meanwhile, and
        # the stall alert must not take the pause for a hang).
        self.on_running: Optional[Callable[[bool], None]] = None
        if not self.enabled:
            return
        from trainer.evaluation.watch import EvalGauges

        self.names = [m.strip() for m in e.metrics.split(",") if m.strip()]
        # Feature metrics (FID, KID, PR, IS) render on all ranks and compare with real features;
        # alignment reads attributes back from G's own samples on rank 0 and needs neither.
        self.feature_names = [m for m in self.names if m != "alignment"]
        self.num_fake, self.num_real = e.num_fake, e.num_real
        self.data = e.data or cfg.data.urls
        self.cache_dir = Path(e.cache).expanduser() if e.cache else None
        self.extractor = self._build_extractor(e) if self.feature_names else None
        self.alignment = self._build_alignment(e) if "alignment" in self.names and env.is_main else None
        self.real: Optional[dict] = None  # rank 0's real features, kept after the first evaluation
        self.real_loaded = False
        self.log_path = cfg.run_dir / "eval.jsonl" if env.is_main else None
        self.gauges = (
            EvalGauges(registry, job=cfg.metrics.job or cfg.run.name, features=e.features)
            if registry is not None and env.is_main
            else None
        )

    def _build_extractor(self, e):
        from trainer.evaluation.features import build_extractor

        # Built on every rank at start-up: a bad weights file fails before the first step, not hours in.
        # Constructing the network draws its (then overwritten) initial weights from the global RNG,
        # which the Trainer has just seeded for training: fork it so training's stream is untouched.
        with torch.random.fork_rng(devices=self._cuda_devices()):
            extractor = build_extractor(
                e.features,
                weights=Path(e.inception_weights).expanduser() if e.inception_weights else None,
                sha256=e.inception_sha256 or None,
            )
        extractor.check_images(self.G.img_channels, self.G.img_resolution, "the generator")
        return extractor

    def _build_alignment(self, e) -> dict:
        """Rank 0's digit network and G's tokenizer, at start-up for the same fail-early reason
        (and under the same fork: the network's construction draws from the global RNG)."""
        from trainer.evaluation.digit_features import load
        from trainer.evaluation.text_alignment import generator_tokenizer

        with torch.random.fork_rng(devices=self._cuda_devices()):
            net = load()
        return {"net": net, "tokenizer": generator_tokenizer(self.G), "samples": e.alignment_samples}

    @property
    def enabled(self) -> bool:
        return self.every_kimg > 0

    def _cuda_devices(self) -> list[int]:
        return [self.env.device.index or 0] if self.env.device.type == "cuda" else []

    def after_step(self, progress) -> Optional[dict]:
        """Evaluate when the last step crossed a multiple of every_kimg (the same test as the
        Trainer's checkpoint and grid intervals). Every rank must call it: it is collective."""
        if not self.enabled:
            return None
        interval = self.every_kimg * 1000
        before = progress.images_seen - self.batch_size
        if math.floor(progress.images_seen / interval) <= math.floor(before / interval):
            return None
        return self.evaluate(progress)

    def at_end(self, progress) -> Optional[dict]:
        """The final evaluation, unless the last step was just evaluated."""
        if not self.enabled or self.last_step == progress.step:
            return None
        return self.evaluate(progress)

    def _feature_report(self) -> Optional[dict]:
        """FID/KID/PR/IS: collective, every rank renders its share; rank 0 gets the report."""
        from trainer.evaluation.run import evaluate_generator, load_real

        rank, world = self.env.rank, self.env.world_size
        if not self.real_loaded:
            self.real = load_real(
                self.data,
                self.extractor,
                num=self.num_real,
                resolution=self.G.img_resolution,
                channels=self.G.img_channels,
                cache_dir=self.cache_dir,
                rank=rank,
                world_size=world,
            )
            self.real_loaded = True
        return evaluate_generator(
            self.G,
            self.extractor,
            self.real,
            names=self.feature_names,
            num_fake=self.num_fake,
            data=self.data,
            rank=rank,
            world_size=world,
        )

    def _alignment_report(self) -> dict:
        """Rank 0 alone (560 prompts x alignment_samples images are cheap): the other ranks go on to
        the next step's collective and wait there, as they do for rank 0's metric maths."""
        from trainer.evaluation.text_alignment import read_attributes, record_fields, sample_prompts, score

        a = self.alignment
        started = time.perf_counter()
        # Truncation 1, as the feature metrics: the record equals
        # `python -m trainer.evaluation.text_alignment EXPORT --samples N` on this G_ema's export.
        images, truth = sample_prompts(self.G, a["tokenizer"], a["samples"], truncation=1.0)
        fields = record_fields(score(read_attributes(images, a["net"]), truth))
        return {
            **fields,
            "alignment_samples_per_prompt": a["samples"],
            "alignment_seconds": round(time.perf_counter() - started, 2),
        }

    def evaluate(self, progress) -> Optional[dict]:
        started = time.perf_counter()
        was_training = self.G.training
        if self.on_running is not None:
            self.on_running(True)
        # fork_rng restores the CPU (and this GPU's) RNG state afterwards: training's streams go on
        # exactly as if nothing had run.
        with torch.random.fork_rng(devices=self._cuda_devices()), torch.no_grad():
            self.G.eval()
            try:
                report = self._feature_report() if self.feature_names else None
                if self.env.is_main:
                    report = report or {}
                    if self.alignment is not None:
                        report.update(self._alignment_report())
            finally:
                self.G.train(was_training)
                if self.on_running is not None:
                    self.on_running(False)
        self.last_step = progress.step
        if report is None:  # not rank 0
            return None
        record = {
            "step": progress.step,
            "kimg": progress.kimg,
            "time": time.time(),
            "source": "training",
            **report,
            "seconds": round(time.perf_counter() - started, 2),
        }
        with open(self.log_path, "a") as f:  # one line per record: a crash never leaves half of one
            f.write(json.dumps(record) + "\n")
        if self.gauges is not None:
            self.gauges.update(record)
        log.info(
            "eval at %.3f kimg: %s (%.1f s)",
            progress.kimg,
            ", ".join(f"{k}={record[k]:.4g}" for k in LOGGED if k in record),
            record["seconds"],
        )
        return record
