"""Wrong captions for the matching-aware loss: which caption a real image is shown as a "fake".

GAN-INT-CLS pairs each real image with another sample's caption. When captions differ in several
attributes at once (colours and the digit, say), D rejects almost every such pair on the easiest
attribute alone and never has to check the others, so G gets no gradient toward them. Word-swap
negatives differ from the true caption in exactly one word: sample i takes the batch caption most
like its own (same length, most tokens equal at the same positions, i.e. usually the same template)
and copies ONE of the differing words from it. Every word slot of the captions is then tested on
its own, and D has to read each attribute of the image to reject them.

Deterministic (no RNG state): which differing word is swapped is `(step + i) % differing`, so an
exact resume replays the same negatives. A word swap can produce a synonym of the true caption
("seven" for "7"); such rare false negatives are the price of not knowing the vocabulary's meaning.
"""

from __future__ import annotations

import torch

from trainer.text.tokenizer import PAD


def rolled_captions(tokens: torch.Tensor) -> torch.Tensor:
    """GAN-INT-CLS's negatives: each sample gets the caption of the sample before it."""
    return tokens.roll(1, dims=0)


def word_swap_captions(tokens: torch.Tensor, step: int) -> torch.Tensor:
    """[N, L] token ids (PAD-padded) -> [N, L]: each caption with one word taken from its most
    similar other caption of the batch. A caption with no same-length partner that differs from it
    gets the rolled caption instead."""
    n = tokens.shape[0]
    lengths = (tokens != PAD).sum(dim=1)  # [N]
    equal = (tokens[:, None, :] == tokens[None, :, :]) & (tokens[:, None, :] != PAD)  # [N, N, L]
    matches = equal.sum(dim=2)  # [N, N] tokens equal at the same position
    differing = lengths[:, None] - matches  # [N, N] positions where j's word differs from i's
    usable = (lengths[:, None] == lengths[None, :]) & (differing > 0)
    # The most similar usable partner; ties go to the nearest index after i (deterministic).
    order = (torch.arange(n, device=tokens.device)[None, :] - torch.arange(n, device=tokens.device)[:, None]) % n
    score = torch.where(usable, matches * (n + 1) + (n - order), torch.full_like(matches, -1))
    partner = score.argmax(dim=1)  # [N]
    has_partner = usable.gather(1, partner[:, None]).squeeze(1)

    other = tokens[partner]  # [N, L]
    diff = (other != tokens) & (tokens != PAD)  # [N, L] swappable positions
    count = diff.sum(dim=1).clamp(min=1)
    pick = (step + torch.arange(n, device=tokens.device)) % count  # which differing word, per sample
    rank = diff.cumsum(dim=1) - 1  # index of each differing position among its row's differing ones
    swap = diff & (rank == pick[:, None])
    swapped = torch.where(swap, other, tokens)
    return torch.where(has_partner[:, None], swapped, rolled_captions(tokens))


def wrong_captions(kind: str, tokens: torch.Tensor, step: int) -> torch.Tensor:
    if kind == "roll":
        return rolled_captions(tokens)
    if kind == "word_swap":
        return word_swap_captions(tokens, step)
    raise ValueError(f"text.mismatch={kind!r}; valid choices: roll, word_swap")
