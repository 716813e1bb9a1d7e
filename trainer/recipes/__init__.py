"""Per-family training steps ("recipes"): what the phases of one step are for a model family.

The loop (`trainer.loop.Trainer`) owns everything families share: engines, data, EMA, logging,
checkpoints, grids and export. A recipe owns only the phases of one step and any per-rank
state they keep (e.g. StyleGAN2's path-length mean), and says which lazy-regularization
intervals the optimizers must be scaled for. Each phase runs through `trainer._run_phase`, so
phase timing, loss logging and the one-network-takes-gradients rule stay in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional, Protocol

import torch

if TYPE_CHECKING:  # pragma: no cover
    from trainer.loop import Trainer


class Recipe(Protocol):
    g_reg_interval: int  # lazy G regularization every N steps (0: none); Adam is rescaled for it
    d_reg_interval: int  # lazy D regularization every N steps (0: none)

    def train_phases(self, t: "Trainer", real: torch.Tensor, real_c: Optional[torch.Tensor]) -> None:
        """Run this step's phases (G and D updates) on one per-rank batch."""

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        """Per-rank tensors a checkpoint must keep for an exact resume."""

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what `rank_tensors` returned."""


class Augmented:
    """Mixed into recipes: D as the losses see it (augmented when `augment.kind` is set), ADA's
    r_t feed and p update, and the augmentation's checkpointed tensors."""

    augment = None

    def critic(self, t):
        from trainer.augment import AugmentedCritic

        return t.D if self.augment is None else AugmentedCritic(t.D, self.augment)

    def observed(self, compute):
        """Wrap a D main phase so ADA sees its mean sign(D(real))."""
        if not hasattr(self.augment, "observe"):
            return compute

        def run():
            result = compute()
            self.augment.observe(result.terms["real_sign"])
            return result
        return run

    def after_step(self, t) -> None:
        if hasattr(self.augment, "update"):
            self.augment.update(t.progress.step + 1)

    def augment_tensors(self) -> dict[str, torch.Tensor]:
        return {} if self.augment is None else self.augment.rank_tensors()

    def load_augment_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.augment is not None:
            self.augment.load_rank_tensors(tensors)


def _stylegan2(cfg, device) -> Recipe:
    from trainer.recipes.stylegan2 import StyleGAN2Recipe

    return StyleGAN2Recipe(cfg, device=device)


def _adversarial(cfg, device) -> Recipe:
    from trainer.recipes.adversarial import AdversarialRecipe

    return AdversarialRecipe(cfg, device=device)


def _progan(cfg, device) -> Recipe:
    from trainer.recipes.progan import ProGANRecipe

    return ProGANRecipe(cfg, device=device)


def _cyclegan(cfg, device) -> Recipe:
    from trainer.recipes.cyclegan import CycleGANRecipe

    return CycleGANRecipe(cfg, device=device)


# family -> recipe factory; every family in trainer.models.FAMILIES has one (a test checks).
RECIPES: dict[str, Callable[..., Recipe]] = {"stylegan2": _stylegan2, "dcgan": _adversarial, "mlp": _adversarial,
                                             "biggan": _adversarial, "progan": _progan,
                                             "cyclegan": _cyclegan}


def build_recipe(cfg, *, device: torch.device) -> Recipe:
    family = cfg.model.family
    if family not in RECIPES:
        raise ValueError(f"model.family={family!r} has no training recipe; valid choices: {', '.join(sorted(RECIPES))}")
    return RECIPES[family](cfg, device)
