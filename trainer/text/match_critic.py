"""The separate caption-matching critic (`text.match_critic_weight`): losses of its two sides.

Why: the caption probe (trainer/evaluation/caption_probe.py) shows that a small D trained alone on
real images, own caption against the same caption with another digit, reads the digit in about
1,000 steps, while inside the GAN the real/fake game on the same features keeps D's digit reading
at chance whatever negatives or extra terms it gets (docs/TEXT2IMG.md). So the critic is a second,
smaller TextDiscriminator (its own text encoder and weights, `TextDiscriminator.match_critic`,
inside D's engine: D's optimizer steps it in D's phase, D's checkpoints carry it, and it is frozen
with the rest of D in G's phases) that never sees a fake: it is trained with exactly the probe's
loss on the real batch, and G is asked to draw images it matches to their caption.

How G is asked (`text.match_critic_objective`): `absolute` (the default) is softplus(-C(fake, its
caption)), `relative` is softplus(C(fake, wrong) - C(fake, its caption)) with `wrong` the critic's
own kind of negative (a one-word swap, a number word preferred). Why: an absolute score can be
raised for every caption at once (images the critic likes whatever they are asked to show), while
the relative form only pays for evidence that tells the asked digit from another.

With `text.match_critic_augment` = s > 0, every image the critic scores (the real batch in D's
phase, G's fakes in G's phase) is first shifted by up to s pixels in x and y (DiffAugment's
`translate` of trainer/augment.py: pad, crop, zero fill), a fresh offset per sample, so a pixel
pattern aimed at the critic's blind spots does not land where it was aimed while the digit stays
readable. The offsets come from a generator seeded by (run.seed, step, rank, phase stream), not
from the rank's RNG: the same on every re-run and after a resume, and the rank's other draws (z,
style mixing, DiffAugment/ADA) are the same with the option on or off. Off (0): images as drawn.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainer.augment import translate

# Stream tags of the critic's translations: D's phase (real images) and G's phase (fakes) draw apart.
AUGMENT_STREAMS = {"D": 0x4D43_5244, "G": 0x4D43_5247}


def translation_offsets(
    n: int, shift: int, *, seed: int, step: int, rank: int, stream: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample integer offsets (dx, dy) [n] in [-shift, shift], from a generator on `device`
    seeded by (seed, step, rank, AUGMENT_STREAMS[stream]): deterministic, no host sync."""
    state = int(np.random.SeedSequence([seed, step, rank, AUGMENT_STREAMS[stream]]).generate_state(1)[0])
    gen = torch.Generator(device=device).manual_seed(state)
    offsets = torch.randint(-shift, shift + 1, [2, n], generator=gen, device=device)
    return offsets[0], offsets[1]


def shift_images(x: torch.Tensor, shift: int, *, seed: int, step: int, rank: int, stream: str) -> torch.Tensor:
    """`x` [N, C, H, W] with each sample moved by its own offset of at most `shift` pixels (zero
    fill, shape kept; differentiable, so G's gradient flows through); `shift` 0 returns `x`."""
    if shift <= 0:
        return x
    dx, dy = translation_offsets(x.shape[0], shift, seed=seed, step=step, rank=rank, stream=stream, device=x.device)
    return translate(x, dx, dy, shift)


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


def relative_generator_loss(critic, fake: torch.Tensor, tokens: torch.Tensor, wrong: torch.Tensor):
    """G's side with `text.match_critic_objective=relative`: softplus(C(fake, wrong) - C(fake, its
    caption)), averaged; low only where the critic prefers the fake's own caption over the swapped
    one, so a score raised for every caption alike earns nothing. `fake` is scored twice as given
    (the caller translates it once, so both captions see the same view), in two calls as in
    `critic_loss` (not one batch of 2N: the critic's minibatch-stddev groups stay those of N images). Returns
    (loss, accuracy), accuracy the detached share of fakes whose own caption scores above `wrong`
    (ties count against), logged as `match_critic_acc`."""
    right_score, wrong_score = critic(fake, tokens), critic(fake, wrong)
    loss = F.softplus(wrong_score - right_score).mean()
    accuracy = (right_score > wrong_score).float().mean().detach()
    return loss, accuracy
