"""Numbers about a rank and its networks that the loop reports: identity labels, gradient norms,
engine statistics, the DCGM GPU label and the diversity (mode-collapse) probe."""

from __future__ import annotations

import os
from typing import Mapping, Optional

import torch


def rank_identity(*, job: str, rank: int, local_rank: int, node: str) -> dict[str, str]:
    """The identity labels of a rank (the SLURM job id from the environment, '' outside SLURM)."""
    return {
        "job": job,
        "rank": str(rank),
        "local_rank": str(local_rank),
        "node": node,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),
    }


def grad_norm(module: torch.nn.Module) -> Optional[torch.Tensor]:
    """L2 norm of the gradients held in `.grad` (a device tensor: read it on a log step only).
    None when the gradients live elsewhere (ZeRO-2 keeps them in its own buckets)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return None
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())


def engine_stats(engines: Mapping[str, object], *, measured: Mapping[str, Optional[torch.Tensor]]) -> dict:
    """observe_log arguments from the DeepSpeed engines (log steps only: reads device values).

    Gradient norms: `measured` (from `grad_norm` before the step) where `.grad` held them, else the
    norm the engine computed itself (ZeRO-2, bf16). Skipped steps are the engines' cumulative
    count; fp32 and bf16 do not scale the loss (scale 1)."""
    norms, scales = {}, {}
    for network, engine in engines.items():
        norm = measured.get(network)
        if norm is None and hasattr(engine, "get_global_grad_norm"):
            norm = engine.get_global_grad_norm()
        if norm is not None:
            norms[network] = float(norm)
        scale = getattr(getattr(engine, "optimizer", None), "cur_scale", None)
        scales[network] = float(scale) if scale is not None else 1.0
    return {
        "grad_norms": norms,
        "loss_scales": scales,
        "skipped_steps": {n: int(getattr(e, "skipped_steps", 0)) for n, e in engines.items()},
    }


def gpu_label(local_rank: int) -> str:
    """The physical GPU index DCGM reports for this rank's device ('' on CPU)."""
    if not torch.cuda.is_available():
        return ""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if local_rank < len(visible):
        return visible[local_rank]
    return str(local_rank)


class DiversityProbe:
    """A live mode-collapse signal, measured on every `every`-th log step.

    The mean pairwise distance between D's penultimate features (the input of its logit layer) of
    G_ema samples from fixed latents, divided by the same for the real images of the current
    batch, generated with the real batch's labels so classes match. A healthy generator is about
    as diverse as the data (near 1, noisy with small batches); a generator collapsing onto a few
    modes drives it toward 0 while the losses can look fine. Costs one G_ema and two D forwards of
    one per-rank batch per measurement. Needs D to have `epilogue.fc` (StyleGAN2's D); for other
    families `ratio` returns None."""

    def __init__(self, *, batch: int, z_dim: int, every: int = 5, seed: int = 0x5EED):
        self.every, self._logs = every, 0
        self.z = torch.randn([batch, z_dim], generator=torch.Generator().manual_seed(seed))

    def due(self) -> bool:
        """Call once per log step; True on every `every`-th one (the first included)."""
        self._logs += 1
        return (self._logs - 1) % self.every == 0

    @torch.no_grad()
    def ratio(self, G_ema, D, real: torch.Tensor, real_c: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        layer = getattr(getattr(D, "epilogue", None), "fc", None)
        if layer is None or len(real) < 2:
            return None
        n = min(len(real), len(self.z))
        z = self.z[:n].to(real.device)
        c = None if real_c is None else real_c[:n].float()
        fake = G_ema(z, c, noise_mode="const")
        spreads = []
        for images in (fake, real[:n]):
            captured = []
            hook = layer.register_forward_hook(
                lambda _m, _i, out, captured=captured: captured.append(out.float().flatten(1))
            )
            try:
                D(images, None if real_c is None else real_c[:n])
            finally:
                hook.remove()
            spreads.append(torch.pdist(captured[0]).mean())
        return spreads[0] / spreads[1].clamp_min(1e-12)
