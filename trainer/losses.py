"""GAN loss terms, one function per training phase (StyleGAN2: Karras et al. 2020, appendix B).

The adversarial objective is a choice (`loss.kind`) shared by every family: the non-saturating
logistic loss, the hinge loss (Lim & Ye 2017, used by SAGAN/BigGAN), the Wasserstein loss with
a gradient penalty on real/fake interpolates (WGAN-GP, Gulrajani et al. 2017) or the least-squares
loss (LSGAN, Mao et al. 2017; CycleGAN's and pix2pix's reference code use it).

Every function takes the plain nn.Modules (engine.module), never the DeepSpeed engine: its
forward hooks break create_graph=True gradients (R1, path length), see docs/ARCHITECTURE.md. The loop owns
backward/step and which network takes gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class PhaseLosses:
    """Scalar tensors for logging (detached) and the total to backpropagate."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


LOSS_KINDS = ("logistic", "hinge", "wgan_gp", "lsgan")


def g_adversarial(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """G's loss on D's scores of its images (hinge and WGAN share the linear form)."""
    if kind == "logistic":
        return F.softplus(-fake_logits).mean()
    if kind in ("hinge", "wgan_gp"):
        return -fake_logits.float().mean()
    if kind == "lsgan":  # least squares (Mao et al. 2017), the CycleGAN paper's choice: pull fakes to 1
        return 0.5 * (fake_logits.float() - 1).square().mean()
    raise ValueError(f"loss.kind={kind!r}; valid choices: {', '.join(LOSS_KINDS)}")


def d_adversarial(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's loss on its scores of real and generated images."""
    if kind == "logistic":
        return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    if kind == "wgan_gp":
        return fake_logits.float().mean() - real_logits.float().mean()
    if kind == "lsgan":  # real to 1, fake to 0; unlike the logistic loss, well-classified fakes still pull G
        return 0.5 * ((real_logits.float() - 1).square().mean() + fake_logits.float().square().mean())
    raise ValueError(f"loss.kind={kind!r}; valid choices: {', '.join(LOSS_KINDS)}")


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
    """WGAN-GP: (|grad_x D(x)| - 1)^2 at random points between real and fake images.

    The fake images pair with the real labels here, so the critic is 1-Lipschitz along each
    class's own real/fake segments."""
    eps = torch.rand([real.shape[0], 1, 1, 1], device=real.device, dtype=real.dtype)
    mixed = (real.detach().lerp(fake.detach(), eps)).requires_grad_(True)
    logits = D(mixed, c)
    (grads,) = torch.autograd.grad(logits.sum(), mixed, create_graph=True)
    norms = grads.float().flatten(1).norm(dim=1)
    return (norms - 1).square().mean() + logits.float().mean() * 0


def run_generator(
    G: nn.Module, z: torch.Tensor, c: Optional[torch.Tensor], *, style_mixing: float, update_w_avg: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate images with style mixing regularization: with probability `style_mixing` a sample
    switches to a second latent's styles after a random layer."""
    ws = G.mapping(z, c, update_w_avg=update_w_avg)
    if style_mixing > 0:
        num_ws = ws.shape[1]
        cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, num_ws)
        cutoff = torch.where(torch.rand([], device=ws.device) < style_mixing, cutoff, torch.full_like(cutoff, num_ws))
        mixed = G.mapping(torch.randn_like(z), c)
        layer = torch.arange(num_ws, device=ws.device)[None, :, None]
        ws = torch.where(layer < cutoff, ws, mixed)
    return G.synthesis(ws), ws


def generator_main(
    G: nn.Module,
    D: nn.Module,
    z: torch.Tensor,
    c: Optional[torch.Tensor],
    *,
    style_mixing: float,
    kind: str = "logistic",
) -> PhaseLosses:
    """G wants D to call its images real (non-saturating logistic by default)."""
    img, _ = run_generator(G, z, c, style_mixing=style_mixing, update_w_avg=True)
    logits = D(img, c)
    loss = g_adversarial(kind, logits)
    return PhaseLosses(loss, {"adversarial": loss.detach(), "fake_score": logits.detach().mean()})


def generator_path_length(
    G: nn.Module,
    z: torch.Tensor,
    c: Optional[torch.Tensor],
    pl_mean: torch.Tensor,
    *,
    style_mixing: float,
    weight: float,
    decay: float,
    interval: int,
) -> PhaseLosses:
    """Path-length regularization: |J_w^T y| should be constant, y random image-space directions.

    Updates `pl_mean` (a running mean, per rank) in place. The loss is multiplied by the lazy
    regularization interval so its average effect matches an every-step penalty.
    """
    img, ws = run_generator(G, z, c, style_mixing=style_mixing)
    pl_noise = torch.randn_like(img) / np.sqrt(img.shape[2] * img.shape[3])
    (pl_grads,) = torch.autograd.grad((img * pl_noise).sum(), ws, create_graph=True)
    pl_lengths = pl_grads.float().square().sum(dim=2).mean(dim=1).sqrt()  # [N]
    pl_mean.copy_(pl_mean.lerp(pl_lengths.mean().detach(), decay))
    penalty = (pl_lengths - pl_mean).square().mean()
    # `img * 0` keeps every G parameter in the graph: the penalty alone gives no gradient to
    # parameters J_w does not depend on (e.g. the toRGB biases), and ZeRO-2's gradient reduction
    # fails on a parameter whose .grad stays None.
    total = penalty * weight * interval + img.float().mean() * 0
    return PhaseLosses(total, {"path_length": penalty.detach(), "pl_mean": pl_mean.detach().clone()})


def discriminator_main(
    G: nn.Module,
    D: nn.Module,
    real: torch.Tensor,
    real_c: Optional[torch.Tensor],
    z: torch.Tensor,
    gen_c: Optional[torch.Tensor],
    *,
    style_mixing: float,
    kind: str = "logistic",
    gp_weight: float = 0.0,
    drift_weight: float = 0.0,
) -> PhaseLosses:
    """D calls real images real and G's images fake (logistic loss by default)."""
    with torch.no_grad():
        fake, _ = run_generator(G, z, gen_c, style_mixing=style_mixing)
    return discriminator_scores(D, real, real_c, fake, gen_c, kind=kind, gp_weight=gp_weight, drift_weight=drift_weight)


def discriminator_scores(
    D: nn.Module,
    real: torch.Tensor,
    real_c: Optional[torch.Tensor],
    fake: torch.Tensor,
    gen_c: Optional[torch.Tensor],
    *,
    kind: str,
    gp_weight: float = 0.0,
    drift_weight: float = 0.0,
) -> PhaseLosses:
    """D's main phase given already generated (detached) images; any family, any loss kind."""
    fake_logits = D(fake.detach(), gen_c)
    real_logits = D(real, real_c)
    adversarial = d_adversarial(kind, real_logits, fake_logits)
    total = adversarial
    terms = {
        "adversarial": adversarial.detach(),
        "real_score": real_logits.detach().mean(),
        "fake_score": fake_logits.detach().mean(),
        "real_sign": real_logits.detach().sign().mean(),
    }
    if kind == "wgan_gp":
        penalty = gradient_penalty(D, real, fake[: real.shape[0]], real_c)
        total = total + gp_weight * penalty
        terms["gradient_penalty"] = penalty.detach()
    if drift_weight > 0:
        # ProGAN's epsilon_drift: a Wasserstein critic is free to shift every score by a constant;
        # this small pull towards zero keeps the scores (and G's loss) from wandering off.
        drift = real_logits.float().square().mean()
        total = total + drift_weight * drift
        terms["drift"] = drift.detach()
    return PhaseLosses(total, terms)


def discriminator_r1(
    D: nn.Module, real: torch.Tensor, real_c: Optional[torch.Tensor], *, gamma: float, interval: int
) -> PhaseLosses:
    """R1: gamma/2 * |grad_x D(x)|^2 on real images, scaled by the lazy interval.

    D(x) is the per-sample score the adversarial losses use: the mean over a PatchGAN's patches
    (one logit per sample elsewhere, where the mean changes nothing). Summing the patches instead
    would scale the penalty with the patch count squared (~1,000 patches at 256x256): the first
    lazy R1 phase then flattened the inpainting D for good (penalty 428, D at chance for 4 kimg)."""
    real = real.detach().requires_grad_(True)
    logits = D(real, real_c)
    (grads,) = torch.autograd.grad(logits.flatten(1).float().mean(1).sum(), real, create_graph=True)
    penalty = grads.float().square().sum(dim=[1, 2, 3]).mean()
    # `logits * 0` keeps D's output in the graph so every rank's backward touches the same
    # parameters, whatever the penalty's graph looks like.
    total = penalty * (gamma / 2) * interval + logits.float().mean() * 0
    return PhaseLosses(total, {"r1": penalty.detach()})


def orthogonal_penalty(module: nn.Module) -> torch.Tensor:
    """BigGAN's orthogonal regularization: sum over weight matrices W (rows = output units) of
    |W W^T * (1 - I)|_F^2. Only off-diagonal terms, so filters are pushed towards orthogonality
    without constraining their norms (spectral norm already does)."""
    total = torch.zeros([], device=next(module.parameters()).device)
    for name, p in module.named_parameters():
        if p.ndim < 2 or not p.requires_grad or name.startswith("embed."):
            continue
        w = p.float().flatten(1)
        gram = w @ w.t()
        total = total + (gram * (1 - torch.eye(gram.shape[0], device=gram.device))).square().sum()
    return total
