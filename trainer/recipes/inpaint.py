"""Inpainting's step: G main (D should call the composite real; `inpaint.hole_l1` x L1 inside the
hole, `inpaint.known_l1` x L1 of G's raw output on the known pixels, optional D-feature
matching), D main on real vs composite (both beside the mask), and lazy R1 on the real images.

The image is `ctx.batch.real`; the mask (uint8 [N, 1, H, W], 255 = missing) comes from the
family's decoder (`trainer.data.masks.InpaintDecoder`) as `ctx.batch.extras["mask"]`.
"""

from __future__ import annotations

from typing import Optional

import torch

from trainer import losses
from trainer.data.masks import InpaintDecoder, mask_files
from trainer.models.inpaint import composite
from trainer.phases import RecipeBase, StepContext

GRID_SAMPLES = 8


def masked_l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |a - b| over the pixels where weight is 1 (all channels), 0 when there are none."""
    per_pixel = (a.float() - b.float()).abs().mean(1, keepdim=True)  # [N, 1, H, W]
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1)


class InpaintRecipe(RecipeBase):
    def __init__(self, cfg, *, device: torch.device):
        self.cfg, self.device = cfg, device
        self.d_reg_interval = cfg.loss.d_reg_interval if cfg.loss.r1_gamma > 0 else 0
        self.grid: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    def sample_decoder(self) -> InpaintDecoder:
        d, i = self.cfg.data, self.cfg.inpaint
        masks = "generate" if i.masks == "generate" else tuple(str(p) for p in mask_files(i.masks))
        return InpaintDecoder(
            resolution=d.resolution,
            channels=d.channels,
            masks=masks,
            strokes=i.strokes,
            boxes=i.boxes,
            max_hole=i.max_hole,
        )

    def train_phases(self, ctx: StepContext) -> None:
        loss, opts, G, D = self.cfg.loss, self.cfg.inpaint, ctx.G, ctx.D
        real = ctx.batch.real
        mask = (ctx.batch.extras["mask"] > 127).to(real.dtype)  # [N, 1, H, W], 1 = missing
        if self.grid is None:
            self.grid = (real[:GRID_SAMPLES].clone(), mask[:GRID_SAMPLES].clone())
        cond = mask * 2 - 1
        critic = lambda x, c: D(x, None, cond=cond)  # noqa: E731 - D sees where the hole is
        fakes = {}

        def g_main() -> losses.PhaseLosses:
            raw = G.fill(real, mask)
            filled = composite(real, raw, mask)
            fakes["fake"] = filled.detach()
            adversarial = losses.g_adversarial(loss.kind, critic(filled, None))
            hole, known = masked_l1(raw, real, mask), masked_l1(raw, real, 1 - mask)
            total = adversarial + opts.hole_l1 * hole + opts.known_l1 * known
            terms = {"adversarial": adversarial.detach(), "hole_l1": hole.detach(), "known_l1": known.detach()}
            if opts.feature_matching > 0:
                matching = feature_matching(D.patch.features, torch.cat([cond, filled], 1), torch.cat([cond, real], 1))
                total = total + opts.feature_matching * matching
                terms["feature_matching"] = matching.detach()
            return losses.PhaseLosses(total, terms)

        def d_main() -> losses.PhaseLosses:
            return losses.discriminator_scores(
                critic,
                real,
                None,
                fakes["fake"],
                None,
                kind=loss.kind,
                gp_weight=loss.gp_weight,
                drift_weight=loss.drift_weight,
            )

        ctx.run_phase("G_main", "G", g_main)
        ctx.run_phase("D_main", "D", d_main)
        if self.d_reg_interval and ctx.step % self.d_reg_interval == 0:
            ctx.run_phase(
                "D_reg",
                "D",
                lambda: losses.discriminator_r1(critic, real, None, gamma=loss.r1_gamma, interval=self.d_reg_interval),
            )

    @torch.no_grad()
    def grid_images(self, G_ema) -> tuple[torch.Tensor, int]:
        """Rows: masked input (holes gray), composite, real (the first batch this rank saw)."""
        real, mask = self.grid
        return torch.cat([real * (1 - mask), G_ema(real, mask).to(real.dtype), real]), 3

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        return {} if self.grid is None else {"grid_real": self.grid[0], "grid_mask": self.grid[1]}

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if "grid_real" in tensors:
            self.grid = (tensors["grid_real"].to(self.device), tensors["grid_mask"].to(self.device))


def feature_matching(features: torch.nn.Sequential, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean L1 between D's intermediate activations (after each LeakyReLU) of real and fake."""
    total, count = fake.new_zeros([]), 0
    x_fake, x_real = fake, real
    for layer in features:
        x_fake, x_real = layer(x_fake), layer(x_real)
        if isinstance(layer, torch.nn.LeakyReLU):
            total = total + (x_fake.float() - x_real.detach().float()).abs().mean()
            count += 1
    return total / max(count, 1)
