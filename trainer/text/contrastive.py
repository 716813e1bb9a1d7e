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
"""

from __future__ import annotations

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
    image: torch.Tensor, text: torch.Tensor, tokens: torch.Tensor, *, temperature: float
) -> torch.Tensor:
    """Symmetric image->text and text->image matching loss of a batch of (image, caption) pairs.

    image, text: [B, C] embeddings (row i of each belongs to pair i); tokens: [B, L] the captions'
    token ids, which say which captions are identical. Scalar float32, mean of both directions."""
    logits = similarity(image, text, temperature)
    same = same_caption(tokens).float()
    targets = same / same.sum(dim=1, keepdim=True)  # symmetric `same`: the same targets both ways
    return 0.5 * (_kl_to_targets(logits, targets) + _kl_to_targets(logits.T, targets))
