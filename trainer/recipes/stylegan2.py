"""StyleGAN2-ADA's step: G main, G reg (path length, lazy), D main, D reg (R1, lazy)."""

from __future__ import annotations

import torch

from trainer import losses
from trainer.augment import build_augment
from trainer.phases import StepContext
from trainer.recipes.augmented import AugmentedRecipe


class StyleGAN2Recipe(AugmentedRecipe):
    def __init__(self, cfg, *, device: torch.device):
        self.cfg = cfg
        loss = cfg.loss
        self.g_reg_interval = loss.g_reg_interval if loss.pl_weight > 0 else 0
        self.d_reg_interval = loss.d_reg_interval if loss.r1_gamma > 0 else 0
        self.pl_mean = torch.zeros([], device=device)  # running mean of path lengths, per rank
        self.augment = build_augment(cfg, device=device)

    def train_phases(self, ctx: StepContext) -> None:
        loss, step, batch = self.cfg.loss, ctx.step, ctx.batch_size
        real, real_c = ctx.batch.real, ctx.batch.real_c
        mix, kind, D = loss.style_mixing, loss.kind, self.critic(ctx)
        ctx.run_phase(
            "G_main",
            "G",
            lambda: losses.generator_main(
                ctx.G, D, ctx.z(batch), ctx.random_labels(batch), style_mixing=mix, kind=kind
            ),
        )
        g_int = self.g_reg_interval
        if g_int and step % g_int == 0:
            n = max(1, batch // loss.pl_batch_shrink)
            ctx.run_phase(
                "G_reg",
                "G",
                lambda: losses.generator_path_length(
                    ctx.G,
                    ctx.z(n),
                    ctx.random_labels(n),
                    self.pl_mean,
                    style_mixing=mix,
                    weight=loss.pl_weight,
                    decay=loss.pl_decay,
                    interval=g_int,
                ),
            )
        ctx.run_phase(
            "D_main",
            "D",
            self.observed(
                lambda: losses.discriminator_main(
                    ctx.G,
                    D,
                    real,
                    real_c,
                    ctx.z(batch),
                    ctx.random_labels(batch),
                    style_mixing=mix,
                    kind=kind,
                    gp_weight=loss.gp_weight,
                    drift_weight=loss.drift_weight,
                )
            ),
        )
        d_int = self.d_reg_interval
        if d_int and step % d_int == 0:
            ctx.run_phase(
                "D_reg", "D", lambda: losses.discriminator_r1(D, real, real_c, gamma=loss.r1_gamma, interval=d_int)
            )
        self.after_step(ctx)

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        return {"pl_mean": self.pl_mean, **super().rank_tensors()}

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.pl_mean.copy_(tensors["pl_mean"])
        super().load_rank_tensors(tensors)
