"""A recipe base for families whose D sees augmented images (`augment.kind`: ADA, DiffAugment)."""

from __future__ import annotations

import torch

from trainer.augment import AugmentedCritic
from trainer.phases import RecipeBase, StepContext


class AugmentedRecipe(RecipeBase):
    """D as the losses see it (augmented when `augment.kind` is set), ADA's r_t feed and p update,
    and the augmentation's checkpointed tensors."""

    augment = None

    def critic(self, ctx: StepContext):
        return ctx.D if self.augment is None else AugmentedCritic(ctx.D, self.augment)

    def observed(self, compute):
        """Wrap a D main phase so ADA sees its mean sign(D(real))."""
        if not hasattr(self.augment, "observe"):
            return compute

        def run():
            result = compute()
            self.augment.observe(result.terms["real_sign"])
            return result

        return run

    def after_step(self, ctx: StepContext) -> None:
        if hasattr(self.augment, "update"):
            self.augment.update(ctx.step + 1)

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        return {} if self.augment is None else self.augment.rank_tensors()

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.augment is not None:
            self.augment.load_rank_tensors(tensors)
