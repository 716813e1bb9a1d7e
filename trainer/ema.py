"""Exponential moving average of the generator's weights (G_ema), with the half-life in images."""

from __future__ import annotations

from typing import Optional

import torch


def ema_beta(*, batch_size: int, images_seen: int, ema_kimg: float, ema_rampup: Optional[float]) -> float:
    """Per-step decay for a half-life of ema_kimg thousand images, shortened early in training
    (half-life at most images_seen * rampup) so G_ema is not dominated by the random init."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, images_seen * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().to(p_ema.dtype).lerp(p_ema, beta))
    # Buffers (w_avg, fixed noise) are copied, not averaged, as in the reference training loop.
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b.detach())
