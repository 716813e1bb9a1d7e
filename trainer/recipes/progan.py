"""ProGAN's step: set the growth stage from images seen, fade the real images the same way G's
output fades, then the adversarial phases (any `loss.kind`; the paper used WGAN-GP).

The stage is a pure function of `progress.images_seen` and the `progressive.*` schedule, so a
resume in the middle of a fade-in continues it exactly, with no extra checkpoint state.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainer.models.progan import stage_at
from trainer.phases import StepContext
from trainer.recipes.adversarial import AdversarialRecipe


def fade_reals(real: torch.Tensor, level: int, alpha: float) -> torch.Tensor:
    """Real images as G can currently make them: at 4 << level pixels, blended with the level
    below while it fades in, shown at the full size (nearest upsampling, like G's output)."""
    full, size = real.shape[2], 4 << level
    x = F.adaptive_avg_pool2d(real, size) if size != full else real
    if level > 0 and alpha < 1:
        x = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2).lerp(x, alpha)
    return F.interpolate(x, size=full) if size != full else x


class ProGANRecipe(AdversarialRecipe):
    def __init__(self, cfg, *, device: torch.device):
        super().__init__(cfg, device=device)
        p = cfg.progressive
        self.max_level = int(np.log2(cfg.data.resolution)) - 2
        self.start_level = int(np.log2(p.start_resolution)) - 2
        self.stable_kimg, self.fade_kimg = p.stable_kimg, p.fade_kimg

    def stage(self, images_seen: int) -> tuple[int, float]:
        return stage_at(
            images_seen / 1000,
            max_level=self.max_level,
            start_level=self.start_level,
            stable_kimg=self.stable_kimg,
            fade_kimg=self.fade_kimg,
        )

    def train_phases(self, ctx: StepContext) -> None:
        level, alpha = self.stage(ctx.images_seen)
        for net in (ctx.G, ctx.D, ctx.G_ema):
            net.set_stage(level, alpha)
        # Logged with G's losses (averaged per log interval): where the growth stands.
        self.stage_terms = {"level": torch.tensor(float(level)), "alpha": torch.tensor(alpha)}
        self.adversarial_phases(ctx, fade_reals(ctx.batch.real, level, alpha), ctx.batch.real_c)
