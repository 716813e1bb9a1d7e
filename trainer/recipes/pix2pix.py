"""pix2pix's step (Isola et al. 2017): G main (the PatchGAN should call (input, G(input)) real, plus
`pix2pix.l1_weight` x |G(input) - target|_1), then D main on (input, target) vs (input, G(input)),
plus lazy R1 on the real pairs when `loss.r1_gamma` > 0.

The target is the batch's image (`ctx.batch.real`); the input comes from the family's decoder
(`trainer.data.paired.PairedDecoder`) as `ctx.batch.extras["input"]`, uint8 on the device.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from trainer import losses
from trainer.data.paired import PairedDecoder, input_channels_of
from trainer.phases import RecipeBase, StepContext

GRID_SAMPLES = 8


def to_signed(images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """uint8 [0, 255] -> [-1, 1] in the training dtype."""
    return images.to(dtype) / 127.5 - 1.0


def as_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Gray images repeated to RGB so a grid can show a 1-channel input beside a colour output."""
    return images.expand(-1, channels, -1, -1) if images.shape[1] == 1 and channels > 1 else images


class Pix2PixRecipe(RecipeBase):
    def __init__(self, cfg, *, device: torch.device):
        self.cfg, self.device = cfg, device
        self.d_reg_interval = cfg.loss.d_reg_interval if cfg.loss.r1_gamma > 0 else 0
        self.grid_pairs: Optional[tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]] = None

    def sample_decoder(self) -> PairedDecoder:
        d, p = self.cfg.data, self.cfg.pix2pix
        return PairedDecoder(
            resolution=d.resolution,
            channels=d.channels,
            input_channels=p.input_channels or input_channels_of(p.transform, d.channels),
            transform=p.transform,
            sigma=p.canny_sigma,
            factor=p.downscale,
            labeled=d.num_classes > 0,
            num_classes=d.num_classes,
        )

    def train_phases(self, ctx: StepContext) -> None:
        loss, G, D = self.cfg.loss, ctx.G, ctx.D
        real, c = ctx.batch.real, ctx.batch.real_c
        inp = to_signed(ctx.batch.extras["input"], real.dtype)
        if self.grid_pairs is None:
            n = GRID_SAMPLES
            self.grid_pairs = (inp[:n].clone(), real[:n].clone(), None if c is None else c[:n].clone())
        critic = lambda x, cc: D(x, cc, cond=inp)  # noqa: E731 - D sees every image beside its input
        fakes = {}

        def g_main() -> losses.PhaseLosses:
            fake = G(inp, c)
            fakes["fake"] = fake.detach()
            adversarial = losses.g_adversarial(loss.kind, critic(fake, c))
            l1 = F.l1_loss(fake, real)
            total = adversarial + self.cfg.pix2pix.l1_weight * l1
            return losses.PhaseLosses(total, {"adversarial": adversarial.detach(), "l1": l1.detach()})

        def d_main() -> losses.PhaseLosses:
            return losses.discriminator_scores(
                critic,
                real,
                c,
                fakes["fake"],
                c,
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
                lambda: losses.discriminator_r1(critic, real, c, gamma=loss.r1_gamma, interval=self.d_reg_interval),
            )

    @torch.no_grad()
    def grid_images(self, G_ema) -> tuple[torch.Tensor, int]:
        """Rows: input, output, target (the first batch this rank saw)."""
        inp, target, c = self.grid_pairs
        channels = target.shape[1]
        return torch.cat([as_channels(inp, channels), G_ema(inp, c).to(target.dtype), target]), 3

    def export_metadata(self) -> dict:
        p = self.cfg.pix2pix
        return {"paired_transform": p.transform, "canny_sigma": p.canny_sigma, "downscale": p.downscale}

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        if self.grid_pairs is None:
            return {}
        inp, target, c = self.grid_pairs
        return {"grid_input": inp, "grid_target": target, **({} if c is None else {"grid_c": c})}

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if "grid_input" in tensors:
            c = tensors.get("grid_c")
            self.grid_pairs = (
                tensors["grid_input"].to(self.device),
                tensors["grid_target"].to(self.device),
                None if c is None else c.to(self.device),
            )
