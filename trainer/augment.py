"""Differentiable augmentation of everything D sees, for small datasets (any family).

- DiffAugment (Zhao et al. 2020): fixed-strength colour, translation and cutout on real and
  fake images alike, every time D is called.
- ADA (Karras et al. 2020): a pipeline of flips, 90-degree rotations, integer translations and
  colour changes, each applied per sample with probability p; p follows the overfitting
  heuristic r_t = E[sign(D(real))]: every `ada_interval` steps p moves by
  sign(r_t - target) * (batch * interval) / (ada_kimg * 1000), so it can go from 0 to 1 in
  `ada_kimg` thousand images.

Every op is built from indexing, `where` and arithmetic (no grid_sample), so R1's and WGAN-GP's
double backward run through them. p and the r_t accumulator are tensors: updating them needs no
host sync, and they are checkpointed per rank for an exact resume.
"""

from __future__ import annotations

from typing import Optional

import torch

from trainer import distributed

DIFFAUGMENT_OPS = ("color", "translation", "cutout")


def _brightness(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return x + (r - 0.5)  # r ~ U(0, 1) per sample, [N, 1, 1, 1]


def _saturation(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (r * 2) + mean


def _contrast(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (r + 0.5) + mean


def translate(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, s: int) -> torch.Tensor:
    """Shift each sample by integer (dx, dy) pixels [N], |dx|, |dy| <= s, with zero fill, via
    gather (whose backward, scatter-add, is itself differentiable)."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, [s, s, s, s])  # [N, C, H+2s, W+2s]
    rows = torch.arange(h, device=x.device)[None, :, None] - dy[:, None, None] + s  # [N, H, 1]
    cols = torch.arange(w, device=x.device)[None, None, :] - dx[:, None, None] + s  # [N, 1, W]
    index = (rows * (w + 2 * s) + cols).reshape(n, 1, h * w).expand(n, c, h * w)
    return padded.flatten(2).gather(2, index).view(n, c, h, w)


def _cutout(x: torch.Tensor, gen_size: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * gen_size + 0.5), int(w * gen_size + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), [n, 1, 1], device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), [n, 1, 1], device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = (ys >= cy - ch // 2) & (ys < cy - ch // 2 + ch) & (xs >= cx - cw // 2) & (xs < cx - cw // 2 + cw)
    return x * (~inside)[:, None].to(x.dtype)


class DiffAugment:
    """The same random policy for real and fake images (DiffAugment's key point: G's images are
    augmented too, and gradients flow through the augmentation to G)."""

    def __init__(self, policy: tuple[str, ...]):
        unknown = [op for op in policy if op not in DIFFAUGMENT_OPS]
        if unknown:
            raise ValueError(f"augment.policy has {unknown}; valid ops: {', '.join(DIFFAUGMENT_OPS)}")
        self.policy = policy

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        rand = lambda: torch.rand([n, 1, 1, 1], device=x.device, dtype=x.dtype)  # noqa: E731
        if "color" in self.policy:
            x = _contrast(_saturation(_brightness(x, rand()), rand()), rand())
        if "translation" in self.policy:
            shift = max(1, x.shape[2] // 8)
            dx = torch.randint(-shift, shift + 1, [n], device=x.device)
            dy = torch.randint(-shift, shift + 1, [n], device=x.device)
            x = translate(x, dx, dy, shift)
        if "cutout" in self.policy:
            x = _cutout(x)
        return x

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass


class AdaptiveAugment:
    def __init__(
        self, *, p: float, target: float, interval: int, adjust_kimg: float, batch_size: int, device: torch.device
    ):
        self.target, self.interval = target, interval
        self.step_size = batch_size * interval / (adjust_kimg * 1000)
        self.p = torch.full([], float(p), device=device)
        self.acc = torch.zeros([2], device=device)  # [sum of mean sign(D(real)), count] since the last update

    def _apply(self, x: torch.Tensor, op) -> torch.Tensor:
        mask = torch.rand([x.shape[0], 1, 1, 1], device=x.device) < self.p
        return torch.where(mask, op(x), x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = self._apply(x, lambda v: v.flip(3))
        # A random quarter turn per sample, chosen with `where` (no host sync on the angle).
        k = torch.randint(1, 4, [n, 1, 1, 1], device=x.device)
        x = self._apply(
            x,
            lambda v: torch.where(
                k == 1, v.rot90(1, (2, 3)), torch.where(k == 2, v.rot90(2, (2, 3)), v.rot90(3, (2, 3)))
            ),
        )
        shift = max(1, x.shape[2] // 8)
        dx = torch.randint(-shift, shift + 1, [n], device=x.device) * (torch.rand([n], device=x.device) < self.p)
        dy = torch.randint(-shift, shift + 1, [n], device=x.device) * (torch.rand([n], device=x.device) < self.p)
        x = translate(x, dx, dy, shift)
        r = lambda: torch.rand([n, 1, 1, 1], device=x.device, dtype=x.dtype)  # noqa: E731
        x = self._apply(x, lambda v: _brightness(v, 0.5 + (r() - 0.5) * 0.4))
        x = self._apply(x, lambda v: _contrast(v, 0.5 + (r() - 0.5) * 0.8))
        x = self._apply(x, lambda v: _saturation(v, 0.5 + (r() - 0.5) * 0.8))
        return x

    def observe(self, real_sign_mean: torch.Tensor) -> None:
        """Feed this rank's mean sign(D(real)) of one D main phase."""
        self.acc += torch.stack([real_sign_mean.detach().float(), torch.ones_like(self.acc[0])])

    def update(self, step: int) -> None:
        """After step `step` (1-based count): every `interval` steps, average r_t over ranks and move p."""
        if step % self.interval:
            return
        total = distributed.all_reduce_mean(self.acc)
        r_t = total[0] / total[1].clamp(min=1)
        self.p.copy_((self.p + torch.sign(r_t - self.target) * self.step_size).clamp(0, 1))
        self.acc.zero_()

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        return {"ada_p": self.p, "ada_acc": self.acc}

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.p.copy_(tensors["ada_p"])
        self.acc.copy_(tensors["ada_acc"])


def build_augment(cfg, *, device: torch.device):
    """None, DiffAugment or AdaptiveAugment from `cfg.augment`."""
    a = cfg.augment
    if a.kind == "none":
        return None
    if a.kind == "diffaugment":
        return DiffAugment(tuple(op.strip() for op in a.policy.split(",") if op.strip()))
    return AdaptiveAugment(
        p=a.ada_p,
        target=a.ada_target,
        interval=a.ada_interval,
        adjust_kimg=a.ada_kimg,
        batch_size=cfg.train.batch_size,
        device=device,
    )


class AugmentedCritic:
    """D as the losses see it: augment, then score. Gradients flow through to the input."""

    def __init__(self, D, augment):
        self.D, self.augment = D, augment

    def __call__(self, img: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        return self.D(self.augment(img), c)
