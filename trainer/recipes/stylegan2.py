"""StyleGAN2-ADA's step: G main, G reg (path length, lazy), D main, D reg (R1, lazy)."""

from __future__ import annotations

from typing import Optional

import torch

from trainer import losses
from trainer.augment import build_augment
from trainer.recipes import Augmented


class StyleGAN2Recipe(Augmented):
    def __init__(self, cfg, *, device: torch.device):
        self.cfg = cfg
        loss = cfg.loss
        self.g_reg_interval = loss.g_reg_interval if loss.pl_weight > 0 else 0
        self.d_reg_interval = loss.d_reg_interval if loss.r1_gamma > 0 else 0
        self.pl_mean = torch.zeros([], device=device)  # running mean of path lengths, per rank
        self.augment = build_augment(cfg, device=device)

    def train_phases(self, t, real: torch.Tensor, real_c: Optional[torch.Tensor]) -> None:
        loss, step, batch = self.cfg.loss, t.progress.step, t.batch
        mix, kind, D = loss.style_mixing, loss.kind, self.critic(t)
        t._run_phase("G_main", t.G_engine, t.D_engine, lambda: losses.generator_main(
            t.G, D, t._z(batch), t._random_labels(batch), style_mixing=mix, kind=kind))
        g_int = self.g_reg_interval
        if g_int and step % g_int == 0:
            n = max(1, batch // loss.pl_batch_shrink)
            t._run_phase("G_reg", t.G_engine, t.D_engine, lambda: losses.generator_path_length(
                t.G, t._z(n), t._random_labels(n), self.pl_mean, style_mixing=mix,
                weight=loss.pl_weight, decay=loss.pl_decay, interval=g_int))
        t._run_phase("D_main", t.D_engine, t.G_engine, self.observed(lambda: losses.discriminator_main(
            t.G, D, real, real_c, t._z(batch), t._random_labels(batch), style_mixing=mix, kind=kind,
            gp_weight=loss.gp_weight, drift_weight=loss.drift_weight)))
        d_int = self.d_reg_interval
        if d_int and step % d_int == 0:
            t._run_phase("D_reg", t.D_engine, t.G_engine, lambda: losses.discriminator_r1(
                D, real, real_c, gamma=loss.r1_gamma, interval=d_int))
        self.after_step(t)

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        return {"pl_mean": self.pl_mean, **self.augment_tensors()}

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.pl_mean.copy_(tensors["pl_mean"])
        self.load_augment_tensors(tensors)
