"""Hard negatives of the contrastive loss (`text.contrastive_negatives=word_swap`): for each caption,
the one-word swaps of it that D's features put closest to its image.

Why: in a batch of 16 colour-digit captions almost no two share both colours, so in the in-batch
B x B matrix colour alone picks the right caption and D never has to read the digit
(docs/TEXT2IMG.md). A caption that differs from the right one in ONE word can only be told apart
by reading that word's attribute in the image. Of all one-word swaps the batch offers, the K that
D currently scores closest to the image join that image's row of the similarity matrix: once D
reads colour, the colour swaps score low and drop out, and the K left are the swaps colour cannot
tell apart (the digit word), so the negatives go where D is still wrong (as `word_swap_hard` does
for the matching-aware loss).

The pool (`one_word_swaps`): caption i with its word at position p replaced by the word caption j
has there, for every other batch caption j of the same length with at least half of its tokens
equal at the same positions (the same template, in practice: "a red 7 on a blue background" and
"a green 3 on a blue background" trade words, "7 in red ink over blue" and "blue background with
a red 7" do not, since their position-wise swaps would be nonsense that no image matches). Each
distinct swap counts once, and a swap that equals a batch caption is left out: it is a column of
the in-batch matrix already.

Deterministic, with no RNG state: the pool depends on the batch only and the pick on D's weights,
so an exact resume replays both. A swap can be a synonym of the true caption ("7" for "seven");
such false negatives are the price of not knowing what words mean (as in trainer/text/negatives.py).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from trainer.text.negatives import alignment
from trainer.text.tokenizer import PAD


def one_word_swaps(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, L] token ids -> candidates [N, N * L, L] and valid [N, N * L]: candidate j * L + p of row i
    is caption i with its word at position p replaced by caption j's (valid: a distinct one-word
    swap from a caption of the same template that no batch caption already is)."""
    n, length = tokens.shape
    lengths, matches = alignment(tokens)
    others = ~torch.eye(n, dtype=torch.bool, device=tokens.device)
    template = (lengths[:, None] == lengths[None, :]) & (2 * matches >= lengths[:, None]) & others  # [i, j]
    # valid[i, j, p]: caption j offers caption i another word for its slot p
    valid = template[:, :, None] & (tokens[None, :, :] != tokens[:, None, :]) & (tokens[:, None, :] != PAD)
    # The same word for the same slot from an earlier partner j' < j: one candidate, not two.
    same_word = tokens[:, None, :] == tokens[None, :, :]  # [j, j', p]
    earlier = torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril(-1)  # [j, j']: j' < j
    valid &= ~(valid[:, None, :, :] & (same_word & earlier[:, :, None])[None]).any(dim=2)
    slot = torch.arange(length, device=tokens.device)
    at = (slot[:, None] == slot[None, :])[None, None]  # [1, 1, p, q]: q is the swapped slot p
    candidates = torch.where(at, tokens[None, :, :, None], tokens[:, None, None, :]).flatten(1, 2)  # [N, N*L, L]
    in_batch = (candidates[:, :, None, :] == tokens[None, None, :, :]).all(dim=3).any(dim=2)  # [N, N*L]
    return candidates, valid.flatten(1) & ~in_batch


def pick_hardest(scores: torch.Tensor, valid: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scores, valid [N, M] -> index [N, k] of the k highest-scoring valid candidates per row and
    whether each pick is valid (rows with fewer than k valid candidates fill up with invalid ones)."""
    if scores.shape[1] < k:  # a batch too small to offer k slots at all
        pad = k - scores.shape[1]
        scores = F.pad(scores, (0, pad), value=float("-inf"))
        valid = F.pad(valid, (0, pad), value=False)
    index = scores.masked_fill(~valid, float("-inf")).topk(k, dim=1).indices
    return index, valid.gather(1, index)


def hardest_swaps(
    image: torch.Tensor, tokens: torch.Tensor, embed_text: Callable[[torch.Tensor], torch.Tensor], k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The K one-word swaps of each caption that D's features put closest to its image.

    image [N, C]: D's image features (only read, to rank the pool); tokens [N, L]; embed_text: token
    ids [M, L] -> D's caption features [M, C]. Returns the picks' token ids [N, K, L] and valid [N, K]
    (an invalid pick holds the caption itself, so that it is never an empty or junk row). Ranking
    costs one pass over the pool without gradient, through D's caption side only (no image pass)."""
    candidates, valid = one_word_swaps(tokens)
    n, m, length = candidates.shape
    scores = torch.full((n, m), float("-inf"), device=tokens.device)
    if valid.any():
        with torch.no_grad():
            rows = valid.nonzero()[:, 0]
            pooled = F.normalize(embed_text(candidates[valid]).float(), dim=1)
            scores[valid] = (F.normalize(image.detach().float(), dim=1)[rows] * pooled).sum(dim=1)
    index, picked_valid = pick_hardest(scores, valid, k)
    index = index.clamp(max=m - 1)  # pads (batches too small for k) point at a real row, masked anyway
    picked = candidates.gather(1, index[:, :, None].expand(n, k, length))
    return torch.where(picked_valid[:, :, None], picked, tokens[:, None, :]), picked_valid


def hard_negatives(
    image: torch.Tensor, tokens: torch.Tensor, embed_text: Callable[[torch.Tensor], torch.Tensor], k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """hardest_swaps' picks as caption features [N, K, C] (with gradient when D takes one: one pass
    over the N * K picks) and valid [N, K], the `hard` argument of contrastive_loss."""
    picked, valid = hardest_swaps(image, tokens, embed_text, k)
    return embed_text(picked.flatten(0, 1)).view(*valid.shape, -1), valid
