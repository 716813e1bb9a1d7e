"""The step of single-generator, single-discriminator families without a mapping network
(DCGAN, MLP GAN, BigGAN-style): G main (plus orthogonal regularization when
`loss.ortho_weight > 0`), D main (any `loss.kind`; WGAN-GP's penalty rides in D main), and an
optional lazy R1 phase (`loss.r1_gamma > 0`).

`loss.n_critic = n` trains the critic n times per G update, as the WGAN-GP paper does (n = 5):
every step is one D update on a fresh real batch, and G main runs on every n-th step only, so
images seen still count the reals D sees."""

from __future__ import annotations

from typing import Optional

import torch

from trainer import losses
from trainer.augment import build_augment
from trainer.phases import StepContext
from trainer.recipes.augmented import AugmentedRecipe


def generator_main(
    G,
    D,
    z: torch.Tensor,
    c: Optional[torch.Tensor],
    *,
    kind: str,
    ortho_weight: float = 0.0,
    extra_terms: Optional[dict] = None,
) -> losses.PhaseLosses:
    logits = D(G(z, c), c)
    loss = losses.g_adversarial(kind, logits)
    terms = {"adversarial": loss.detach(), "fake_score": logits.detach().mean(), **(extra_terms or {})}
    if ortho_weight > 0:
        ortho = losses.orthogonal_penalty(G)
        terms["orthogonal"] = ortho.detach()
        loss = loss + ortho_weight * ortho
    return losses.PhaseLosses(loss, terms)


def discriminator_main(
    G,
    D,
    real: torch.Tensor,
    real_c: Optional[torch.Tensor],
    z: torch.Tensor,
    gen_c: Optional[torch.Tensor],
    *,
    kind: str,
    gp_weight: float,
    drift_weight: float = 0.0,
) -> losses.PhaseLosses:
    with torch.no_grad():
        fake = G(z, gen_c)
    return losses.discriminator_scores(
        D, real, real_c, fake, gen_c, kind=kind, gp_weight=gp_weight, drift_weight=drift_weight
    )


class AdversarialRecipe(AugmentedRecipe):
    stage_terms: dict = {}  # extra scalars logged with G main (ProGAN: level, alpha)

    def __init__(self, cfg, *, device: torch.device):
        self.cfg = cfg
        self.g_reg_interval = 0
        self.d_reg_interval = cfg.loss.d_reg_interval if cfg.loss.r1_gamma > 0 else 0
        self.augment = build_augment(cfg, device=device)

    def train_phases(self, ctx: StepContext) -> None:
        self.adversarial_phases(ctx, ctx.batch.real, ctx.batch.real_c)

    def adversarial_phases(self, ctx: StepContext, real: torch.Tensor, real_c: Optional[torch.Tensor]) -> None:
        loss, batch, D = self.cfg.loss, ctx.batch_size, self.critic(ctx)
        if ctx.step % loss.n_critic == 0:
            self.generator_phase(ctx, D)
        ctx.run_phase(
            "D_main",
            "D",
            self.observed(
                lambda: discriminator_main(
                    ctx.G,
                    D,
                    real,
                    real_c,
                    ctx.z(batch),
                    ctx.random_labels(batch),
                    kind=loss.kind,
                    gp_weight=loss.gp_weight,
                    drift_weight=loss.drift_weight,
                )
            ),
        )
        d_int = self.d_reg_interval
        if d_int and ctx.step % d_int == 0:
            ctx.run_phase(
                "D_reg", "D", lambda: losses.discriminator_r1(D, real, real_c, gamma=loss.r1_gamma, interval=d_int)
            )
        self.after_step(ctx)

    def generator_phase(self, ctx: StepContext, D) -> None:
        loss, batch = self.cfg.loss, ctx.batch_size
        ctx.run_phase(
            "G_main",
            "G",
            lambda: generator_main(
                ctx.G,
                D,
                ctx.z(batch),
                ctx.random_labels(batch),
                kind=loss.kind,
                ortho_weight=loss.ortho_weight,
                extra_terms=self.stage_terms,
            ),
        )
