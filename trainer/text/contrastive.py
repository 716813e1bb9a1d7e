"""Contrastive image-caption matching (XMC-GAN's and StyleGAN-T's idea): `text.contrastive_weight`.

Why: the matching-aware term asks D one yes/no question per image (is this caption right?), and a
wrong caption that names other colours is rejected on colour alone, so D's projection head never
has to read the digit (docs/TEXT2IMG.md, the caption probe). A B x B similarity matrix between
D's image embeddings and its caption embeddings, with cross-entropy towards the diagonal in both
directions, asks every image to pick its own caption out of the whole batch: a batch of 16 holds
captions that share the colours and differ in the digit, so reading the digit lowers the loss.

Similarity is the cosine divided by a fixed temperature (XMC-GAN's 0.1): the cosine bounds the
logits to +-1/temperature whatever the scale of D's features (D's projection features are not
normalised and grow with training), and a fixed temperature adds no state to checkpoint and no
parameter that D could inflate to make the loss small.

Identical captions (equal token sequences) are all right answers: the targets are uniform over
them (soft targets), and the loss is the KL divergence to those targets (cross-entropy minus the
targets' entropy), so a batch of distinct captions scores log(B) with random embeddings and 0 when
every image picks its own caption, duplicates or not. Captions that mean the same in other words
("7" and "seven") remain negatives: only the tokens are compared.

Hard negatives (`text.contrastive_negatives=word_swap`, trainer/text/swap_pool.py): image i's row
also holds K captions made for it alone (its caption with one word swapped), with target 0; the
text->image direction stays B x B, since a swapped caption has no image of its own. Picks that do
not exist (a caption without a same-template partner in the batch) are masked out of the softmax.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def same_caption(tokens: torch.Tensor) -> torch.Tensor:
    """int64 token ids [B, L] -> bool [B, B]: True where two rows are the same token sequence."""
    return (tokens[:, None, :] == tokens[None, :, :]).all(dim=2)


def _kl_to_targets(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of KL(targets || softmax(logits)); rows of `targets` sum to 1."""
    log_p = logits.log_softmax(dim=1)
    entropy = -(targets * targets.clamp(min=1e-12).log()).sum(dim=1)
    return (-(targets * log_p).sum(dim=1) - entropy).mean()


def similarity(image: torch.Tensor, text: torch.Tensor, temperature: float) -> torch.Tensor:
    """image [B, C], text [B, C] -> logits [B, B]: cosine of image i and caption j / temperature."""
    return F.normalize(image.float(), dim=1) @ F.normalize(text.float(), dim=1).T / temperature


def contrastive_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    tokens: torch.Tensor,
    *,
    temperature: float,
    hard: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
) -> torch.Tensor:
    """Symmetric image->text and text->image matching loss of a batch of (image, caption) pairs.

    image, text: [B, C] embeddings (row i of each belongs to pair i); tokens: [B, L] the captions'
    token ids, which say which captions are identical; hard: optional (features [B, K, C], valid
    [B, K]) of K extra wrong captions per image, appended to its image->text row. Scalar float32,
    mean of both directions."""
    logits = similarity(image, text, temperature)
    same = same_caption(tokens).float()
    targets = same / same.sum(dim=1, keepdim=True)  # symmetric `same`: the same targets both ways
    text_to_image = _kl_to_targets(logits.T, targets)
    if hard is not None:
        extra = _hard_logits(image, *hard, temperature)
        logits = torch.cat([logits, extra], dim=1)
        targets = torch.cat([targets, torch.zeros_like(extra)], dim=1)
    return 0.5 * (_kl_to_targets(logits, targets) + text_to_image)


# Logit of a missing hard negative: exp(-1e4) is 0 in float32, and unlike -inf it keeps
# 0 * log_softmax finite in the KL.
_MISSING = -1e4


def _hard_logits(image: torch.Tensor, hard_text: torch.Tensor, valid: torch.Tensor, temperature: float):
    """[B, K]: cosine of image i and its k-th hard negative / temperature; missing ones _MISSING."""
    cos = torch.einsum("bc,bkc->bk", F.normalize(image.float(), dim=1), F.normalize(hard_text.float(), dim=2))
    return (cos / temperature).masked_fill(~valid, _MISSING)


def beats_swaps(image: torch.Tensor, text: torch.Tensor, hard_text: torch.Tensor, valid: torch.Tensor):
    """Share of the images with at least one hard negative whose own caption is closer than all of
    them (logged as `contrastive_swap_acc`: whether D tells the digit apart, for the colour digits).
    NaN-free: 0 when no image has a hard negative."""
    with torch.no_grad():
        own = F.cosine_similarity(image.float(), text.float(), dim=1)  # [B]
        worst = _hard_logits(image, hard_text, valid, 1.0).max(dim=1).values  # [B]
        has = valid.any(dim=1)
        return ((own > worst) & has).float().sum() / has.float().sum().clamp(min=1)
