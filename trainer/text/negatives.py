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


def alignment(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Caption lengths [N] and the number of tokens equal at the same position, pairwise [N, N]."""
    lengths = (tokens != PAD).sum(dim=1)
    equal = (tokens[:, None, :] == tokens[None, :, :]) & (tokens[:, None, :] != PAD)  # [N, N, L]
    return lengths, equal.sum(dim=2)


def _partners(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each caption, its most similar other batch caption (same length, most tokens equal at
    the same positions; ties go to the nearest index after it): the partner's tokens [N, L], the
    positions where they differ [N, L], and whether a usable partner exists [N]."""
    n = tokens.shape[0]
    lengths, matches = alignment(tokens)
    usable = (lengths[:, None] == lengths[None, :]) & (lengths[:, None] - matches > 0)
    order = (torch.arange(n, device=tokens.device)[None, :] - torch.arange(n, device=tokens.device)[:, None]) % n
    score = torch.where(usable, matches * (n + 1) + (n - order), torch.full_like(matches, -1))
    partner = score.argmax(dim=1)  # [N]
    other = tokens[partner]
    return other, (other != tokens) & (tokens != PAD), usable.gather(1, partner[:, None]).squeeze(1)


def _swap(tokens: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
    """Each caption with its partner's word at its `pick`-th differing position (modulo their count);
    the rolled caption where there is no partner."""
    other, diff, has_partner = _partners(tokens)
    count = diff.sum(dim=1).clamp(min=1)
    rank = diff.cumsum(dim=1) - 1  # index of each differing position among its row's differing ones
    swap = diff & (rank == (pick % count)[:, None])
    return torch.where(has_partner[:, None], torch.where(swap, other, tokens), rolled_captions(tokens))


def word_swap_captions(tokens: torch.Tensor, step: int) -> torch.Tensor:
    """[N, L] token ids (PAD-padded) -> [N, L]: each caption with one word taken from its most
    similar other caption of the batch, cycling through the differing words with the step."""
    return _swap(tokens, step + torch.arange(tokens.shape[0], device=tokens.device))


def word_swap_options(tokens: torch.Tensor, options: int) -> torch.Tensor:
    """[options, N, L]: option k swaps the k-th differing word (repeats when fewer differ), for a
    caller that picks the hardest option per sample (`text.mismatch=word_swap_hard`)."""
    index = torch.arange(tokens.shape[0], device=tokens.device)
    return torch.stack([_swap(tokens, torch.full_like(index, k)) for k in range(options)])


def hardest(options: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """options [K, N, L], D's scores of (real image i, option k) [K, N] -> [N, L]: per sample, the
    option D finds most believable. Once D rejects a kind of mistake (colours, say), the hardest
    negatives are the mistakes it does not yet see, so its training goes where it is still wrong."""
    best = scores.argmax(dim=0)  # [N]
    return options.gather(0, best[None, :, None].expand(1, *options.shape[1:])).squeeze(0)


def wrong_captions(kind: str, tokens: torch.Tensor, step: int) -> torch.Tensor:
    if kind == "roll":
        return rolled_captions(tokens)
    if kind == "word_swap":
        return word_swap_captions(tokens, step)
    raise ValueError(f"text.mismatch={kind!r} needs D's scores (word_swap_hard) or is unknown; valid: roll, word_swap")


# The words of a number, for `preferred_swap_captions`: the colour digits name their digit either
# way ("7", "seven"), and the digit is the attribute that no other signal teaches D to read.
NUMBER_WORDS = {
    **{str(d): d for d in range(10)},
    **{w: d for d, w in enumerate("zero one two three four five six seven eight nine".split())},
}


def number_values(index: dict[str, int], num_tokens: int) -> torch.Tensor:
    """int64 [num_tokens]: the number a token id names (NUMBER_WORDS), -1 for every other token.
    `index` maps words to ids (the builtin tokenizer's); a word the vocabulary lacks is skipped."""
    values = torch.full([num_tokens], -1, dtype=torch.int64)
    for word, value in NUMBER_WORDS.items():
        if word in index:
            values[index[word]] = value
    return values


def preferred_swap_captions(tokens: torch.Tensor, step: int, values: torch.Tensor | None = None) -> torch.Tensor:
    """[N, L] -> [N, L]: each caption with ONE word replaced by the word another batch caption of the
    same template (same length, at least half of the tokens equal at the same positions) has in that
    slot, the negatives of the caption-matching critic (trainer/text/match_critic.py).

    Where the batch offers it, the swapped slot is a number word replaced by one naming ANOTHER
    number (`values`: number_values' table; "7" -> "three", never "7" -> "seven", a synonym): the
    probe's negative, the same caption with another digit. Otherwise any one-word swap, and with no
    same-template caption at all, the rolled caption. Of the allowed swaps (partner j, slot p,
    ordered j-major), row i takes the ((step + i) % count)-th: deterministic, no RNG state."""
    n, length = tokens.shape
    device = tokens.device
    lengths, matches = alignment(tokens)
    others = ~torch.eye(n, dtype=torch.bool, device=device)
    template = (lengths[:, None] == lengths[None, :]) & (2 * matches >= lengths[:, None]) & others  # [i, j]
    differs = (tokens[None, :, :] != tokens[:, None, :]) & (tokens[:, None, :] != PAD)  # [i, j, p]
    valid = template[:, :, None] & differs
    if values is None:
        preferred = torch.zeros_like(valid)
    else:
        value = torch.where(tokens == PAD, -1, values.to(device)[tokens.clamp(min=0)])  # [N, L]
        preferred = valid & (value[:, None, :] >= 0) & (value[None, :, :] >= 0) & (value[:, None, :] != value[None])
    preferred, valid = preferred.flatten(1), valid.flatten(1)  # [i, j * L + p]
    allowed = torch.where(preferred.any(dim=1)[:, None], preferred, valid)
    count = allowed.sum(dim=1)
    pick = (step + torch.arange(n, device=device)) % count.clamp(min=1)
    rank = allowed.cumsum(dim=1) - 1
    chosen = (allowed & (rank == pick[:, None])).float().argmax(dim=1)  # index j * L + p
    j, p = chosen // length, chosen % length
    swapped = tokens.clone()
    rows = torch.arange(n, device=device)
    swapped[rows, p] = tokens[j, p]
    return torch.where((count > 0)[:, None], swapped, rolled_captions(tokens))
