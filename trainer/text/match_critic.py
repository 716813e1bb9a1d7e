"""The separate caption-matching critic (`text.match_critic_weight`): losses of its two sides.

Why: the caption probe (trainer/evaluation/caption_probe.py) shows that a small D trained alone on
real images, own caption against the same caption with another digit, reads the digit in about
1,000 steps, while inside the GAN the real/fake game on the same features keeps D's digit reading
at chance whatever negatives or extra terms it gets (docs/TEXT2IMG.md). So the critic is a second,
smaller TextDiscriminator (its own text encoder and weights, `TextDiscriminator.match_critic`,
inside D's engine: D's optimizer steps it in D's phase, D's checkpoints carry it, and it is frozen
with the rest of D in G's phases) that never sees a fake: it is trained with exactly the probe's
loss on the real batch, and G is asked to draw images it matches to their caption.

No augmentation on either side (the probe has none): the critic scores images as drawn.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def critic_loss(critic, real: torch.Tensor, tokens: torch.Tensor, wrong: torch.Tensor):
    """The caption probe's loss on the real batch: softplus(-C(x, its caption)) + softplus(C(x, wrong)),
    each averaged over the batch; and the share of images whose own caption scores above the wrong
    one (ties count against), logged as `match_critic_acc`. Returns (loss, accuracy)."""
    right_score, wrong_score = critic(real, tokens), critic(real, wrong)
    loss = F.softplus(-right_score).mean() + F.softplus(wrong_score).mean()
    accuracy = (right_score > wrong_score).float().mean().detach()
    return loss, accuracy


def generator_loss(critic, fake: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """G's side: softplus(-C(fake, the caption it was drawn for)), averaged: draw what C matches."""
    return F.softplus(-critic(fake, tokens)).mean()
