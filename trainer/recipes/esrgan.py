"""ESRGAN's step (family esrgan, docs/SUPERRES.md): G maps the stream's LR copy of each HR crop
(`ctx.batch.extras["lr"]`, made by `trainer.superres.degrade.PairDecoder`) to an SR image.

* `sr.stage=psnr`: one phase, G main with pixel L1 only (D is built but never steps).
* `sr.stage=gan` (initialised from the PSNR stage with `sr.init_from`): G main with
  `l1_weight` x L1 + `gan_weight` x adversarial (+ `perceptual_weight` x VGG feature L1), then D
  main. `sr.gan_loss=ragan` is the relativistic average GAN of ESRGAN (D judges whether a real
  image looks more real than the average fake, and G the reverse); `vanilla` is the plain
  non-saturating one of Real-ESRGAN. Both work per image (VGG D), per patch (patch D) or per
  pixel (U-Net D). With `loss.r1_gamma` > 0, a lazy R1 phase on real crops every
  `loss.d_reg_interval` steps.

At every sample grid the recipe also scores G_ema on the validation photos (`validate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F

from trainer import losses
from trainer.phases import RecipeBase, StepContext
from trainer.superres.degrade import PairDecoder


def ragan_terms(real: torch.Tensor, fake: torch.Tensor, *, for_generator: bool) -> torch.Tensor:
    """Relativistic average GAN loss; logits [N, ...] (per image or per pixel)."""
    real_rel = real - fake.mean(0, keepdim=True)
    fake_rel = fake - real.mean(0, keepdim=True)
    real_target, fake_target = (0.0, 1.0) if for_generator else (1.0, 0.0)
    return 0.5 * (
        F.binary_cross_entropy_with_logits(real_rel, torch.full_like(real_rel, real_target))
        + F.binary_cross_entropy_with_logits(fake_rel, torch.full_like(fake_rel, fake_target))
    )


def generator_adversarial(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if kind == "ragan":
        return ragan_terms(real, fake, for_generator=True)
    return F.softplus(-fake).mean()  # non-saturating: -log sigmoid(D(G(lr)))


def discriminator_adversarial(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if kind == "ragan":
        return ragan_terms(real, fake, for_generator=False)
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def validation_folder(cfg) -> Optional[Path]:
    """sr.val, else the prepared photos' val/ folder (data.prepare=photos), else none."""
    if cfg.sr.val:
        return Path(cfg.sr.val).expanduser()
    if cfg.data.prepare == "photos":
        from trainer.data.photos import photos_root
        from trainer.data.photos import validation_folder as photos_val
        from trainer.data.sources import expand_urls

        return photos_val(photos_root(expand_urls(cfg.data.urls)[0]))
    return None


def lr_tensor(ctx: StepContext) -> torch.Tensor:
    """The batch's LR images, uint8 as decoded -> [-1, 1] in the training dtype."""
    return ctx.batch.extras["lr"].to(ctx.dtype) / 127.5 - 1.0


class ESRGANRecipe(RecipeBase):
    def __init__(self, cfg, *, device: torch.device):
        self.cfg, self.device, self.s = cfg, device, cfg.sr
        self.grid: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        self.perceptual = None
        if self.s.stage == "gan" and self.s.perceptual_weight > 0:
            from trainer.superres.perceptual import PerceptualLoss

            self.perceptual = PerceptualLoss.from_file(
                Path(self.s.perceptual_weights).expanduser(), sha256=self.s.perceptual_sha256
            ).to(device)
        self.val_folder = validation_folder(cfg)
        self.d_reg_interval = cfg.loss.d_reg_interval if cfg.loss.r1_gamma > 0 else 0

    def sample_decoder(self) -> PairDecoder:
        d = self.cfg.data
        return PairDecoder(d.resolution, self.s.scale, channels=d.channels, degradation=self.s.degradation)

    def train_phases(self, ctx: StepContext) -> None:
        s, hr, lr = self.s, ctx.batch.real, lr_tensor(ctx)
        if self.grid is None:
            self.grid = (lr[:8].detach().clone(), hr[:8].detach().clone())
        if s.stage == "psnr":

            def pixel_only() -> losses.PhaseLosses:
                l1 = F.l1_loss(ctx.G(lr), hr)
                return losses.PhaseLosses(l1, {"l1": l1.detach()})

            ctx.run_phase("G_main", "G", pixel_only)
            return
        made: dict[str, torch.Tensor] = {}

        def g_main() -> losses.PhaseLosses:
            sr = ctx.G(lr)
            made["sr"] = sr.detach()
            l1 = F.l1_loss(sr, hr)
            with torch.no_grad():  # real logits are constants for G
                real_logits = ctx.D(hr)
            fake_logits = ctx.D(sr)
            adversarial = generator_adversarial(s.gan_loss, real_logits, fake_logits)
            total = s.l1_weight * l1 + s.gan_weight * adversarial
            terms = {"l1": l1.detach(), "adversarial": adversarial.detach(), "fake_score": fake_logits.detach().mean()}
            if self.perceptual is not None:
                perceptual = self.perceptual(sr, hr)
                total = total + s.perceptual_weight * perceptual
                terms["perceptual"] = perceptual.detach()
            return losses.PhaseLosses(total, terms)

        def d_main() -> losses.PhaseLosses:
            real_logits, fake_logits = ctx.D(hr), ctx.D(made["sr"])
            loss = discriminator_adversarial(s.gan_loss, real_logits, fake_logits)
            return losses.PhaseLosses(
                loss,
                {
                    "adversarial": loss.detach(),
                    "real_score": real_logits.detach().mean(),
                    "fake_score": fake_logits.detach().mean(),
                },
            )

        ctx.run_phase("G_main", "G", g_main)
        ctx.run_phase("D_main", "D", d_main)
        if self.d_reg_interval and ctx.step % self.d_reg_interval == 0:
            gamma, interval = self.cfg.loss.r1_gamma, self.d_reg_interval
            ctx.run_phase(
                "D_reg", "D", lambda: losses.discriminator_r1(ctx.D, hr, None, gamma=gamma, interval=interval)
            )

    @torch.no_grad()
    def grid_images(self, G_ema) -> Optional[tuple[torch.Tensor, int]]:
        """Rows: LR upscaled by bicubic, SR by G_ema, HR (the first batch this rank saw)."""
        if self.grid is None:
            return None
        lr, hr = self.grid
        bicubic = F.interpolate(lr.float(), scale_factor=self.s.scale, mode="bicubic", align_corners=False)
        return torch.cat([bicubic.clamp(-1, 1), G_ema(lr).float().clamp(-1, 1), hr.float()]), 3

    @torch.no_grad()
    def validate(self, G_ema) -> Optional[dict[str, float]]:
        """PSNR/SSIM/sharpness of G_ema and of bicubic on the validation folder (rank 0)."""
        if self.val_folder is None or not self.val_folder.is_dir():
            return None
        from trainer.evaluation.superres import evaluate_folder
        from trainer.superres.upscale import upscale_image

        was_training = G_ema.training
        G_ema.eval()
        try:
            report = evaluate_folder(
                lambda lr: upscale_image(G_ema, lr, scale=self.s.scale, tile=self.s.tile, device=self.device),
                self.val_folder,
                scale=self.s.scale,
                on=self.s.val_metrics_on,
                crop=self.s.val_crop,
            )
        finally:
            G_ema.train(was_training)
        if not report["images"]:
            return None
        scores = {f"sr_{k}": v for k, v in report["sr"].items()}
        scores.update({f"bicubic_{k}": v for k, v in report["bicubic"].items()})
        scores["sr_psnr_gain_db"] = report["psnr_gain_db"]
        return scores

    def export_metadata(self) -> dict[str, Any]:
        from trainer.models.esrgan import MIN_INPUT

        return {
            "task": "super-resolution",
            "scale": self.s.scale,
            "sr_stage": self.s.stage,
            "degradation": self.s.degradation,
            "min_input": MIN_INPUT,
        }

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        return {} if self.grid is None else {"grid_lr": self.grid[0], "grid_hr": self.grid[1]}

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if "grid_lr" in tensors:
            self.grid = (tensors["grid_lr"].to(self.device), tensors["grid_hr"].to(self.device))
