"""The contrastive image-caption matching loss (trainer/text/contrastive.py, `text.contrastive_weight`):
its values, duplicate captions, D's features it is computed on, a tiny D that learns to match real
colour digits with it alone, the config checks, and a run with the key on through the CLI; and its
word-swap hard negatives (trainer/text/swap_pool.py, `text.contrastive_negatives=word_swap`): one
word changed, colours kept for a D that reads colour, a loss that a colour-only reader cannot
satisfy, and a CLI run with them."""

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainer.config import ConfigError, load_config
from trainer.models.text2img import TextDiscriminator
from trainer.text.contrastive import beats_swaps, contrastive_loss, same_caption
from trainer.text.swap_pool import hard_negatives, hardest_swaps, one_word_swaps
from trainer.text.tokenizer import WordTokenizer, count_words

ROOT = Path(__file__).resolve().parents[2]


def distinct_tokens(b: int) -> torch.Tensor:
    return torch.arange(b)[:, None].repeat(1, 3)  # B different captions of 3 tokens


def test_random_embeddings_score_log_b_and_agreeing_ones_near_zero():
    torch.manual_seed(0)
    b, dim = 16, 64
    image, text = torch.randn(b, dim), torch.randn(b, dim)
    tokens = distinct_tokens(b)
    # At temperature 1 the random cosines (~ +-1/8) barely move the softmax from uniform: log(B).
    assert contrastive_loss(image, text, tokens, temperature=1.0).item() == pytest.approx(math.log(b), abs=0.05)
    random_pairs = contrastive_loss(image, text, tokens, temperature=0.1).item()
    agreeing = contrastive_loss(text + 0.1 * image, text, tokens, temperature=0.1).item()
    assert random_pairs > math.log(b) - 0.1 and agreeing < 0.05
    # Partial agreement lies between, so the loss has a slope towards matching pairs.
    halfway = contrastive_loss(text + image, text, tokens, temperature=0.1).item()
    assert agreeing < halfway < random_pairs


def test_identical_captions_are_right_answers_not_negatives():
    tokens = torch.tensor([[1, 2, 3], [1, 2, 3], [4, 5, -1], [6, 5, -1]])  # rows 0 and 1 are one caption
    assert same_caption(tokens).tolist() == [
        [True, True, False, False],
        [True, True, False, False],
        [False, False, True, False],
        [False, False, False, True],
    ]
    torch.manual_seed(0)
    text = torch.randn(3, 32)[[0, 0, 1, 2]]  # a caption's embedding depends on its tokens only
    image = text.clone()
    # Both images of the shared caption match it: a perfect batch, which plain diagonal targets
    # (F.cross_entropy towards i) would score at least log(2)/2 for the duplicated pair.
    assert contrastive_loss(image, text, tokens, temperature=0.1).item() < 1e-3
    logits = F.normalize(image) @ F.normalize(text).T / 0.1
    naive = 0.5 * (F.cross_entropy(logits, torch.arange(4)) + F.cross_entropy(logits.T, torch.arange(4)))
    assert naive.item() > math.log(2) / 4
    # And which of the two duplicated images sits in which row does not matter.
    swapped = image[[1, 0, 2, 3]] + 0.3 * torch.randn(4, 32)
    assert contrastive_loss(swapped, text, tokens, temperature=0.1).item() == pytest.approx(
        contrastive_loss(swapped[[1, 0, 2, 3]], text, tokens, temperature=0.1).item(), abs=1e-5
    )


def tiny_d(tokenizer: WordTokenizer, resolution: int = 16) -> TextDiscriminator:
    return TextDiscriminator(
        img_resolution=resolution,
        img_channels=3,
        tokenizer=tokenizer.to_json(),
        context=12,
        text_dim=32,
        text_layers=1,
        text_heads=2,
        channel_base=256,
        channel_max=32,
        mapping_layers=1,
        mbstd_group=4,
    )


def colour_digit_tokenizer() -> WordTokenizer:
    from trainer.data.colour_digits import all_triples, captions

    words = count_words([c for d, i, b in all_triples() for c in captions(d, i, b)])
    return WordTokenizer.from_counts(words, context=12, max_words=100)


def test_embed_is_the_two_halves_of_the_projection_score():
    torch.manual_seed(0)
    tok = colour_digit_tokenizer()
    D = tiny_d(tok)
    img = torch.randn(4, 3, 16, 16)
    tokens = torch.tensor([tok.encode(c) for c in ["a red 7 on a blue background"] * 2 + ["the digit 3"] * 2])
    image, text = D.embed(img, tokens)
    assert image.shape == text.shape == (4, D.net.epilogue.cmap_dim)
    assert torch.allclose(D.score(image, text), D(img, tokens), atol=1e-5)
    assert torch.allclose(D.score(*D.embed(img, None)), D(img, None), atol=1e-5)  # the unknown word


class ColourDigitBatches:
    """Real colour digits at 16x16 with one of their captions; different digits, inks and backgrounds."""

    def __init__(self, tokenizer: WordTokenizer, seed: int):
        from trainer.data.colour_digits import glyph_alphas

        self.alphas, self.labels = glyph_alphas()
        self.tokenizer, self.rng = tokenizer, random.Random(seed)

    def __call__(self, indices, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        from trainer.data.colour_digits import captions, render, withheld

        images, texts = [], []
        for _ in range(n):
            i = self.rng.choice(indices)
            digit = int(self.labels[i])
            ink = self.rng.choice([k for k in range(8) if not withheld(digit, k)])
            background = self.rng.choice([k for k in range(8) if k != ink])
            images.append(render(self.alphas[i], ink, background))
            texts.append(self.rng.choice(captions(digit, ink, background)))
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
        return F.avg_pool2d(x, 2), torch.tensor([self.tokenizer.encode(t) for t in texts])


def retrieval(D, batches, held, rounds: int = 4, b: int = 32) -> float:
    """Share of held-out images whose own caption D ranks first among the batch's b captions."""
    hits = []
    with torch.no_grad():
        for _ in range(rounds):
            x, tokens = batches(held, b)
            image, text = D.embed(x, tokens)
            best = (F.normalize(image) @ F.normalize(text).T).argmax(dim=1)
            hits.append(same_caption(tokens)[torch.arange(b), best].float())  # an identical caption counts
    return float(torch.cat(hits).mean())


def test_tiny_d_trained_only_contrastively_finds_the_caption_of_held_out_digits():
    from trainer.data.colour_digits import split

    torch.manual_seed(0)
    tok = colour_digit_tokenizer()
    D = tiny_d(tok)
    train, held = split()  # held: digits never trained on
    batches = ColourDigitBatches(tok, seed=0)
    before = retrieval(D, ColourDigitBatches(tok, seed=1), held)
    opt = torch.optim.Adam(D.parameters(), lr=0.002, betas=(0.0, 0.99))
    for _ in range(300):
        x, tokens = batches(train, 32)
        loss = contrastive_loss(*D.embed(x, tokens), tokens, temperature=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = retrieval(D, ColourDigitBatches(tok, seed=1), held)  # the same held-out batches as `before`
    # Chance is 1/32 (about 3%).
    print(f"held-out caption retrieval: {before:.1%} before, {after:.1%} after 300 steps")
    assert after > 0.4 and after > before + 0.3, (before, after)


def caption_batch(tok: WordTokenizer, b: int = 16, seed: int = 0):
    """b captions of random (digit, ink, background) in random templates and digit forms, as a rank's
    batch of the colour digits holds them: [(digit, ink, background)], token ids [b, L]."""
    from trainer.data.colour_digits import all_triples, captions

    rng = random.Random(seed)
    triples = [rng.choice(all_triples()) for _ in range(b)]
    texts = [rng.choice(captions(*t)) for t in triples]
    return triples, torch.tensor([tok.encode(t) for t in texts])


class AttributeReader:
    """An embedding that reads the colours (and the digit, if asked) and nothing else: an image of
    (digit, ink, background) is one-hot ink + one-hot background (+ one-hot digit); a caption the
    count of each colour word (+ of each digit, numeral or word). A true caption's vector equals its
    image's; a one-word colour swap moves it; a digit swap moves it only for a digit reader."""

    def __init__(self, tok: WordTokenizer, *, digit: bool):
        from trainer.data.colour_digits import COLOURS, DIGIT_WORDS

        self.colours = [tok.index[c] for c in COLOURS]
        self.digits = [(tok.index[str(d)], tok.index[w]) for d, w in enumerate(DIGIT_WORDS)] if digit else []

    def images(self, triples) -> torch.Tensor:
        out = torch.zeros(len(triples), 8 + 10)
        for row, (d, ink, background) in enumerate(triples):
            out[row, ink] = out[row, background] = 1
            if self.digits:
                out[row, 8 + d] = 1
        return out

    def texts(self, tokens: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(tokens.shape[0], 8 + 10)
        for c, token in enumerate(self.colours):
            out[:, c] = (tokens == token).sum(dim=1)
        for d, (numeral, word) in enumerate(self.digits):
            out[:, 8 + d] = ((tokens == numeral) | (tokens == word)).sum(dim=1)
        return out


def test_pool_holds_distinct_one_word_swaps_from_captions_of_the_same_template():
    tok = colour_digit_tokenizer()
    texts = [
        "a red seven on a blue background",
        "a green 3 on a blue background",
        "a green 3 on a blue background",  # the same caption twice: its swaps count once
        "seven in red ink over blue",  # 6 tokens, like the next, but another template:
        "blue background with a red 7",  # no position-wise swaps between these two
    ]
    tokens = torch.tensor([tok.encode(t) for t in texts])
    candidates, valid = one_word_swaps(tokens)
    pool = [{tuple(c) for c in candidates[i][valid[i]].tolist()} for i in range(len(texts))]
    expected = {tuple(tok.encode(t)) for t in ["a green seven on a blue background", "a red 3 on a blue background"]}
    assert pool[0] == expected and len(candidates[0][valid[0]]) == 2
    assert (
        pool[1]
        == pool[2]
        == {tuple(tok.encode(t)) for t in ["a red 3 on a blue background", "a green seven on a blue background"]}
    )
    assert pool[3] == pool[4] == set()
    # A swap that equals another caption of the batch is left out (it is a column already).
    tokens = torch.tensor([tok.encode(t) for t in ["a red 7 on a blue background", "a red 3 on a blue background"]])
    assert not one_word_swaps(tokens)[1].any()


def test_hard_negatives_differ_in_one_word_and_keep_the_colours_for_a_colour_reader():
    from trainer.data.colour_digits import COLOURS

    tok = colour_digit_tokenizer()
    colour_ids = {tok.index[c] for c in COLOURS}
    reader = AttributeReader(tok, digit=False)
    seen = kept = 0
    for seed in range(4):
        triples, tokens = caption_batch(tok, seed=seed)
        picked, valid = hardest_swaps(reader.images(triples), tokens, reader.texts, k=3)
        candidates, pool_valid = one_word_swaps(tokens)
        for i in range(len(tokens)):
            # The pool's swaps that keep the colours (the digit swaps): D's colour features cannot tell
            # them from the true caption, so they are the hardest and taken first, before any colour swap.
            changed = candidates[i] != tokens[i]  # [M, L]
            keeps = pool_valid[i] & ~(changed & torch.isin(tokens[i], torch.tensor(sorted(colour_ids)))).any(dim=1)
            want = min(3, int(keeps.sum()))
            for k in range(3):
                if not valid[i, k]:
                    assert torch.equal(picked[i, k], tokens[i])
                    continue
                positions = (picked[i, k] != tokens[i]).nonzero().flatten().tolist()
                assert len(positions) == 1, (i, k, positions)  # exactly one word differs
                colour_kept = tokens[i, positions[0]].item() not in colour_ids
                assert colour_kept == (k < want), (i, k, want)
                seen += 1
                kept += colour_kept
    assert kept > seen / 2, (kept, seen)  # mostly digit swaps: a batch of 16 offers enough of them


def test_word_swap_negatives_cost_a_colour_only_reader_what_the_batch_does_not():
    tok = colour_digit_tokenizer()
    triples, tokens = caption_batch(tok, seed=0)
    losses = {}
    for digit in (False, True):
        reader = AttributeReader(tok, digit=digit)
        image, text = reader.images(triples), reader.texts(tokens)
        hard = hard_negatives(image, tokens, reader.texts, 3)
        assert hard[0].shape == (16, 3, text.shape[1]) and hard[1].shape == (16, 3)
        losses[digit] = (
            contrastive_loss(image, text, tokens, temperature=0.1).item(),
            contrastive_loss(image, text, tokens, temperature=0.1, hard=hard).item(),
            beats_swaps(image, text, *hard).item(),
        )
    (colour_batch, colour_swaps, colour_acc), (_, digit_swaps, digit_acc) = losses[False], losses[True]
    print(f"colour reader: batch {colour_batch:.3f}, word_swap {colour_swaps:.3f}; digit reader {digit_swaps:.3f}")
    # The batch's captions nearly all differ in colour: reading colour almost solves it ...
    assert colour_batch < 0.5
    # ... but each image's digit swaps tie with its own caption: about log(1 + ties) / 2 per image.
    assert colour_swaps > colour_batch + 0.3
    # A reader of the digit too gets the word_swap loss low again, and beats every swap
    # (ties go against it: a colour reader beats none).
    assert digit_swaps < colour_swaps - 0.3 and digit_acc > 0.8 and colour_acc == 0.0


def test_missing_hard_negatives_change_nothing():
    torch.manual_seed(0)
    image, text, tokens = torch.randn(6, 8), torch.randn(6, 8), distinct_tokens(6)
    nothing = (torch.randn(6, 2, 8), torch.zeros(6, 2, dtype=torch.bool))
    assert contrastive_loss(image, text, tokens, temperature=0.1, hard=nothing).item() == pytest.approx(
        contrastive_loss(image, text, tokens, temperature=0.1).item(), abs=1e-6
    )
    assert beats_swaps(image, text, *nothing).item() == 0.0


def test_bad_values_name_the_key(colour_shards):
    base = ["configs/text2img_digits.yaml"]
    for value in ("-1", "nan"):
        with pytest.raises(ConfigError, match="text.contrastive_weight.*must be >= 0"):
            load_config(*base, [f"data.urls={colour_shards}", f"text.contrastive_weight={value}"])
    for value in ("0", "-0.1", "inf"):
        with pytest.raises(ConfigError, match="text.contrastive_temperature.*must be > 0"):
            load_config(*base, [f"data.urls={colour_shards}", f"text.contrastive_temperature={value}"])
    for value in ("0", "-2"):
        with pytest.raises(ConfigError, match="text.contrastive_hard_negatives.*must be >= 1"):
            load_config(*base, [f"data.urls={colour_shards}", f"text.contrastive_hard_negatives={value}"])
    with pytest.raises(ConfigError, match="text.contrastive_negatives.*valid choices: batch, word_swap"):
        load_config(*base, [f"data.urls={colour_shards}", "text.contrastive_negatives=hardest"])
    # word_swap negatives with the loss off would claim a term that is not applied.
    with pytest.raises(ConfigError, match="text.contrastive_negatives.*text.contrastive_weight=0"):
        load_config(*base, [f"data.urls={colour_shards}", "text.contrastive_negatives=word_swap"])
    cfg = load_config(*base, [f"data.urls={colour_shards}"])
    assert cfg.text.contrastive_weight == 0 and cfg.text.contrastive_temperature == 0.1
    assert cfg.text.contrastive_negatives == "batch" and cfg.text.contrastive_hard_negatives == 3


@pytest.mark.slow
@pytest.mark.parametrize("negatives", ["batch", "word_swap"])
def test_a_run_with_the_key_on_trains_and_logs_both_terms(train_one_rank, tmp_path, negatives):
    # One rank with DiffAugment (the 2-rank exact-resume test in test_train_text2img.py covers ADA,
    # R1, path length and resume with the term and word_swap negatives on).
    result = train_one_rank(
        tmp_path,
        "contrastive",
        "augment.kind=diffaugment",
        "train.kimg=0.032",
        "text.contrastive_weight=1",
        f"text.contrastive_negatives={negatives}",
        drop=("augment.kind",),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    run = tmp_path / "contrastive"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records
    for r in records:
        for key in ("D/contrastive", "G/contrastive"):
            # Finite, and within the bounds of cosine logits at temperature 0.1 (|logit| <= 10) for a
            # batch of 8: a KL between 0 and 2 * 10 + log(8).
            assert 0 <= r["losses"][key] <= 2 * 10 + math.log(8), (key, r["losses"])
        for key in ("D/contrastive_swap_acc", "G/contrastive_swap_acc"):
            # A share, logged only when there are swaps to beat.
            assert (0 <= r["losses"][key] <= 1) if negatives == "word_swap" else key not in r["losses"]
    assert (run / "export" / "generator.safetensors").is_file()
