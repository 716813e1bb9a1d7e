"""The training loop of one rank: the family's phases, EMA, logs, checkpoints.

Reads like a table of contents: `Trainer.__init__` builds everything, `run` loops over steps,
each step hands a `trainer.phases.StepContext` to the model family's recipe (`trainer.recipes`;
StyleGAN2-ADA's schedule with lazy regularization for stylegan2), which runs its phases through
`StepContext.run_phase`, and then does the bookkeeping that is due. Host syncs (`.item()`) happen
only on log steps.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from prometheus_client import CollectorRegistry

from trainer import checkpoint, distributed, losses
from trainer.config import Config
from trainer.data import Batch, stream_for
from trainer.data.sources import DataError, find_manifest
from trainer.data.stream import to_training_tensor
from trainer.distributed import DistEnv
from trainer.ema import ema_beta, update_ema
from trainer.evaluation.periodic import PeriodicEval
from trainer.export import export_generator
from trainer.images import save_grid
from trainer.models import build_networks
from trainer.phases import Counters, Network, StepBatch, StepContext, one_hot
from trainer.recipes import build_recipe
from trainer.sampling.latents import LatentGrid
from trainer.telemetry.console import ProgressBar
from trainer.telemetry.jsonl import JsonlLog
from trainer.telemetry.probes import DiversityProbe, engine_stats, gpu_label, grad_norm, rank_identity
from trainer.telemetry.prometheus import TrainingMetrics
from trainer.telemetry.tensorboard import TensorBoardLog

log = logging.getLogger(__name__)


class Trainer:
    def __init__(
        self,
        cfg: Config,
        env: DistEnv,
        *,
        registry: Optional[CollectorRegistry] = None,
        resume_from: Optional[Path] = None,
        preemption=None,
    ):
        self.cfg, self.env = cfg, env
        # A trainer.preemption.PreemptionWatcher (or None): asked once per step whether to stop.
        self.preemption, self.preempted = preemption, False
        self.run_dir = cfg.run_dir
        if cfg.train.batch_size % env.world_size:
            raise ValueError(
                f"train.batch_size={cfg.train.batch_size} does not divide by the world size "
                f"{env.world_size}; use a multiple of {env.world_size}"
            )
        self.batch = cfg.train.batch_size // env.world_size  # per rank
        self.dtype = torch.bfloat16 if cfg.train.precision == "bf16" else torch.float32
        self.c_dim = cfg.c_dim

        self.recipe = build_recipe(cfg, device=env.device)

        # Identical initial weights on every rank, then per-rank random streams.
        torch.manual_seed(cfg.run.seed)
        G, D = build_networks(cfg)
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False).to(env.device)
        self.G_engine = self._engine(G.to(env.device), cfg.optim.g_lr, self.recipe.g_reg_interval)
        self.D_engine = self._engine(D.to(env.device), cfg.optim.d_lr, self.recipe.d_reg_interval)
        self.G, self.D = self.G_engine.module, self.D_engine.module
        torch.manual_seed(cfg.run.seed * 1000 + 1 + env.rank)

        self.progress = checkpoint.Progress(world_size=env.world_size)
        if resume_from is not None:
            self.progress, tensors = checkpoint.load(
                resume_from,
                G_engine=self.G_engine,
                D_engine=self.D_engine,
                G_ema=self.G_ema,
                rank=env.rank,
                world_size=env.world_size,
                seed=cfg.run.seed,
            )
            self.recipe.load_rank_tensors(tensors)
            if env.is_main:
                log.info("resumed from %s at %.1f kimg", resume_from, self.progress.kimg)

        self.data = self._stream(None, decoder=self.recipe.sample_decoder())
        self.extra_data: dict[str, Iterator[Batch]] = {
            name: self._stream(extra, decoder=None) for name, extra in self.recipe.extra_streams().items()
        }
        self.metrics = (
            TrainingMetrics(registry, identity=self._identity(), gpu=gpu_label(env.local_rank))
            if registry is not None
            else None
        )
        self._grad_norms: dict[str, torch.Tensor] = {}  # filled on log steps only (device tensors)
        self._probe = DiversityProbe(batch=self.batch, z_dim=self.G.z_dim, seed=cfg.run.seed)
        self.jsonl = JsonlLog(self.run_dir / "metrics.jsonl" if env.is_main else None)
        self.registry = registry
        self.tensorboard = TensorBoardLog(self.run_dir if env.is_main and cfg.metrics.tensorboard else None)
        self.grid = LatentGrid(z_dim=self.G.z_dim, c_dim=self.c_dim)  # fixed latents for sample grids
        self.evaluation = PeriodicEval(cfg, env, self.G_ema, registry=registry)  # eval.every_kimg (0: off)
        if self.metrics is not None:
            self.evaluation.on_running = self.metrics.observe_evaluation
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    # ----------------------------------------------------------------------------- setup

    def _engine(self, module: torch.nn.Module, lr: float, reg_interval: int):
        o = self.cfg.optim
        lr, betas = distributed.lazy_adam(lr, o.beta1, o.beta2, reg_interval)
        config = distributed.engine_config(
            micro_batch=self.batch,
            world_size=self.env.world_size,
            lr=lr,
            betas=betas,
            eps=o.eps,
            zero_stage=self.cfg.train.zero_stage,
            precision=self.cfg.train.precision,
        )
        return distributed.build_engine(module, config)

    def _stream(self, extra, *, decoder) -> Iterator[Batch]:
        """The main stream (extra=None) or a recipe's `ExtraStream`, from where this rank stands."""
        common = dict(
            rank=self.env.rank,
            world_size=self.env.world_size,
            batch_size=self.batch,
            start_batch=self.progress.step,
            decoder=decoder,
        )
        if extra is None:
            return stream_for(self.cfg, **common)
        try:
            return stream_for(self.cfg, urls=extra.urls, seed_offset=extra.seed_offset, labeled=extra.labeled, **common)
        except DataError as exc:
            raise DataError(f"{extra.config_key}: {exc}") from None

    def _identity(self) -> dict[str, str]:
        return rank_identity(
            job=self.cfg.metrics.job or self.cfg.run.name,
            rank=self.env.rank,
            local_rank=self.env.local_rank,
            node=self.env.node,
        )

    def _step_batch(self, batch: Batch) -> StepBatch:
        """A loader batch on the training device: images in [-1, 1], one-hot labels, extras as decoded."""
        real_c = None if self.c_dim == 0 else one_hot(batch.labels, self.c_dim, self.env.device, self.dtype)
        extras = {k: v.to(self.env.device, non_blocking=True) for k, v in batch.extras.items()}
        return StepBatch(to_training_tensor(batch.images, self.env.device, self.dtype), real_c, extras, batch.keys)

    def _run_phase(self, name: str, network: Network, compute: Callable[[], losses.PhaseLosses]) -> None:
        t0 = time.perf_counter()
        engine, frozen = (self.G_engine, self.D_engine) if network == "G" else (self.D_engine, self.G_engine)
        engine.module.requires_grad_(True)
        frozen.module.requires_grad_(False)
        result = compute()
        engine.backward(result.total)
        logs_next = (self.progress.step + 1) % self.cfg.train.log_every == 0
        if self.metrics is not None and name.endswith("_main") and logs_next:
            self._grad_norms[network] = grad_norm(engine.module)  # read on the coming log step
        engine.step()
        for term, value in result.terms.items():
            key = f"{network}/{term}"
            self._sums[key] = self._sums.get(key, 0) + value.float()
            self._counts[key] = self._counts.get(key, 0) + 1
        if self.metrics is not None:
            self.metrics.observe_phase(name, time.perf_counter() - t0)

    def _next_extra(self, stream: str) -> StepBatch:
        if stream not in self.extra_data:
            raise KeyError(f"stream {stream!r} is not one of the recipe's extra_streams(): {sorted(self.extra_data)}")
        return self._step_batch(next(self.extra_data[stream]))

    def context(self, batch: StepBatch) -> StepContext:
        """What the recipe sees of this step (trainer.phases)."""
        return StepContext(
            nets={"G": self.G, "D": self.D, "G_ema": self.G_ema},
            engines={"G": self.G_engine, "D": self.D_engine},
            batch=batch,
            counters=Counters(step=self.progress.step, images_seen=self.progress.images_seen),
            batch_size=self.batch,
            device=self.env.device,
            dtype=self.dtype,
            rank=self.env.rank,
            world_size=self.env.world_size,
            z_dim=self.G.z_dim,
            c_dim=self.c_dim,
            run_phase=self._run_phase,
            next_batch=self._next_extra,
        )

    def train_step(self, batch: Batch) -> None:
        cfg = self.cfg
        step_batch = self._step_batch(batch)
        self._last_real = (step_batch.real, step_batch.real_c)  # for the diversity probe on log steps (no copy)
        self.recipe.train_phases(self.context(step_batch))

        self.progress.step += 1
        self.progress.images_seen += cfg.train.batch_size
        beta = ema_beta(
            batch_size=cfg.train.batch_size,
            images_seen=self.progress.images_seen,
            ema_kimg=cfg.train.ema_kimg,
            ema_rampup=cfg.train.ema_rampup,
        )
        update_ema(self.G_ema, self.G, beta)
        self.last_ema_beta = beta

    # ----------------------------------------------------------------------------- bookkeeping

    def _crossed(self, every_kimg: float) -> bool:
        """True when the last step crossed a multiple of every_kimg."""
        interval = every_kimg * 1000
        before = self.progress.images_seen - self.cfg.train.batch_size
        return math.floor(self.progress.images_seen / interval) > math.floor(before / interval)

    def _log(self, bar: ProgressBar, steps: int, seconds: float, data_wait: float = 0.0) -> dict:
        """Average the loss terms over the interval and across ranks: the one host sync."""
        keys = sorted(self._sums)
        means = torch.stack([self._sums[k] / self._counts[k] for k in keys]) if keys else torch.zeros(0)
        means = distributed.all_reduce_mean(means).tolist()
        losses_now = dict(zip(keys, means))
        self._sums.clear()
        self._counts.clear()
        images = steps * self.cfg.train.batch_size
        record = {
            "step": self.progress.step,
            "kimg": round(self.progress.kimg, 3),
            "time": time.time(),
            "images_per_second": images / max(seconds, 1e-9),
            "sec_per_kimg": seconds / max(images / 1000, 1e-9),
            "ema_beta": self.last_ema_beta,
            # share of the interval rank 0 waited for batches: > a few % means data-starved
            "data_wait_fraction": round(data_wait / max(seconds, 1e-9), 4),
            "losses": losses_now,
        }
        self.jsonl.write(record)
        if self.metrics is not None:
            lrs = {"G": self.G_engine.get_lr()[0], "D": self.D_engine.get_lr()[0]}
            engines = engine_stats({"G": self.G_engine, "D": self.D_engine}, measured=self._grad_norms)
            self._grad_norms.clear()
            diversity = self._probe.ratio(self.G_ema, self.D, *self._last_real) if self._probe.due() else None
            self.metrics.observe_log(
                kimg=self.progress.kimg,
                losses=losses_now,
                lrs=lrs,
                ema_beta=self.last_ema_beta,
                diversity_ratio=None if diversity is None else float(diversity),
                **engines,
            )
        if self.registry is not None:
            self.tensorboard.write_registry(self.registry, step=self.progress.images_seen)
        bar.update(self.progress.kimg, record)
        return record

    def save_checkpoint(self) -> Path:
        t0 = time.perf_counter()
        path = checkpoint.save(
            self.run_dir,
            G_engine=self.G_engine,
            D_engine=self.D_engine,
            G_ema=self.G_ema,
            progress=self.progress,
            rank_tensors=self.recipe.rank_tensors(),
            rank=self.env.rank,
            keep=self.cfg.train.keep_checkpoints,
        )
        if self.metrics is not None:
            self.metrics.observe_checkpoint(time.perf_counter() - t0)
        return path

    @torch.no_grad()
    def save_grid(self) -> Optional[Path]:
        if not self.env.is_main:
            return None
        own = self.recipe.grid_images(self.G_ema)  # families that do not sample from latents (cyclegan)
        if own is not None:
            return self._write_grid(*own)
        images = self.grid.images(self.G_ema, self.env.device)
        return self._write_grid(images, self.grid.rows)

    def validate(self) -> Optional[dict]:
        """The recipe's validation scores of G_ema (rank 0, with every grid) -> JSONL + gauges."""
        if not self.env.is_main:
            return None
        scores = self.recipe.validate(self.G_ema)
        if not scores:
            return None
        record = {
            "step": self.progress.step,
            "kimg": round(self.progress.kimg, 3),
            "time": time.time(),
            "validation": scores,
        }
        self.jsonl.write(record)
        if self.metrics is not None:
            self.metrics.observe_validation(scores)
        return record

    def _write_grid(self, images: torch.Tensor, rows: int) -> Path:
        path = self.run_dir / "samples" / f"grid-{self.progress.images_seen // 1000:06d}kimg.png"
        save_grid(images, path, rows=rows)
        save_grid(images, self.run_dir / "samples" / "latest.png", rows=rows)
        self.tensorboard.write_grid(path, step=self.progress.images_seen)
        return path

    def export(self) -> Optional[Path]:
        if not self.env.is_main:
            return None
        training = {"run": self.cfg.run.name, "kimg": self.progress.kimg, "step": self.progress.step}
        class_names = (find_manifest(self.cfg.data.urls) or {}).get("class_names")
        return export_generator(
            self.G_ema,
            self.run_dir / "export",
            class_names=class_names,
            training=training,
            metadata=self.recipe.export_metadata(),
        )

    # ----------------------------------------------------------------------------- loop

    def run(self) -> None:
        cfg, env = self.cfg, self.env
        target = int(cfg.train.kimg * 1000)
        if self.metrics is not None:
            self.metrics.set_static(
                world_size=env.world_size,
                target_kimg=cfg.train.kimg,
                resolution=cfg.data.resolution,
                skipped_steps={"G": self.G_engine.skipped_steps, "D": self.D_engine.skipped_steps},
            )
        bar = ProgressBar(total_kimg=cfg.train.kimg, start_kimg=self.progress.kimg, enabled=env.is_main)
        last_log, steps_since_log, waited_since_log = time.perf_counter(), 0, 0.0
        saved_at = self.progress.step if self.progress.step else None
        self.last_ema_beta = 0.0
        while self.progress.images_seen < target:
            t0 = time.perf_counter()
            batch = next(self.data)
            waited = time.perf_counter() - t0
            self.train_step(batch)
            steps_since_log += 1
            waited_since_log += waited
            if self.metrics is not None:
                self.metrics.observe_step(
                    images=self.batch,
                    step_seconds=time.perf_counter() - t0,
                    data_wait_seconds=waited,
                    skipped=batch.skipped,
                )
            done = self.progress.images_seen >= target
            if done or self.progress.step % cfg.train.log_every == 0:
                now = time.perf_counter()
                self._log(bar, steps_since_log, now - last_log, data_wait=waited_since_log)
                last_log, steps_since_log, waited_since_log = now, 0, 0.0
            if not done and self._crossed(cfg.train.sample_kimg):
                self.save_grid()
                self.validate()
            if not done and self._crossed(cfg.train.checkpoint_kimg):
                self.save_checkpoint()
                saved_at = self.progress.step
            if not done:
                self.evaluation.after_step(self.progress)
            if not done and self.preemption is not None and self.preemption.should_stop():
                # Preempted: checkpoint this step boundary and return; the worker exits and requeues.
                if saved_at != self.progress.step:
                    self.save_checkpoint()
                self.preempted = True
                bar.close()
                return
        bar.close()
        if saved_at != self.progress.step:
            self.save_checkpoint()
        self.evaluation.at_end(self.progress)
        grid = self.save_grid()
        self.validate()
        export = self.export()
        if env.is_main:
            print(
                f"hiresgan: training done at {self.progress.kimg:.2f} kimg\n"
                f"  export: {export}\n  latest sample grid: {grid}",
                flush=True,
            )

    def close(self) -> None:
        self.jsonl.close()
        if self.registry is not None:  # the final values (the last checkpoint comes after the last log step)
            self.tensorboard.write_registry(self.registry, step=self.progress.images_seen)
        self.tensorboard.close()
