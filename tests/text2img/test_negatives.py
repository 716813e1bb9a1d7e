"""Word-swap negatives of the matching-aware loss: one word differs, taken from a similar caption."""

import torch

from trainer.text.negatives import hardest, rolled_captions, word_swap_captions, word_swap_options, wrong_captions
from trainer.text.tokenizer import PAD, WordTokenizer, count_words

CAPTIONS = [
    "a red seven on a blue background",
    "a red three on a blue background",
    "a green seven on a red background",
    "the digit 4, drawn in cyan on black",
    "the digit 9, drawn in cyan on white",
    "seven in red ink over blue",  # no other caption of its length: falls back to the rolled one
]


def _tokens():
    tok = WordTokenizer.from_counts(count_words(CAPTIONS), context=10, max_words=100)
    return torch.tensor([tok.encode(c) for c in CAPTIONS])


def test_each_negative_differs_in_exactly_one_word_from_a_similar_caption():
    tokens = _tokens()
    for step in range(4):
        wrong = word_swap_captions(tokens, step)
        for i in range(5):
            changed = (wrong[i] != tokens[i]).nonzero().flatten().tolist()
            assert len(changed) == 1, (step, i, changed)
            (pos,) = changed
            # The new word is the one the most similar caption has in that slot.
            partners = {0: 1, 1: 0, 2: 0, 3: 4, 4: 3}
            assert wrong[i, pos] == tokens[partners[i], pos]
        assert torch.equal(wrong[5], tokens[4])  # the rolled caption
        assert torch.equal((wrong == PAD), (tokens == PAD)[[0, 1, 2, 3, 4, 4]])


def test_swapped_word_cycles_through_the_differing_slots_with_the_step():
    tokens = _tokens()
    # Captions 0 and 2 differ in ink and background: successive steps swap each in turn.
    slots = {int((word_swap_captions(tokens, step)[2] != tokens[2]).nonzero()) for step in range(2)}
    assert slots == {1, 5}


def test_roll_is_gan_int_cls_and_unknown_kind_is_named():
    tokens = _tokens()
    assert torch.equal(wrong_captions("roll", tokens, 0), rolled_captions(tokens))
    assert torch.equal(rolled_captions(tokens)[0], tokens[-1])
    try:
        wrong_captions("shuffle", tokens, 0)
    except ValueError as exc:
        assert "text.mismatch" in str(exc)
    else:
        raise AssertionError("an unknown kind must raise")


def test_options_cover_each_differing_word_and_the_hardest_is_taken_per_sample():
    tokens = _tokens()
    options = word_swap_options(tokens, 3)  # [3, N, L]
    assert options.shape == (3, *tokens.shape)
    # Caption 2 differs from its partner (caption 0) in two slots: options 0 and 1 swap each, 2 repeats 0.
    slots = [int((options[k, 2] != tokens[2]).nonzero()) for k in range(3)]
    assert slots == [1, 5, 1]
    scores = torch.zeros(3, len(CAPTIONS))
    scores[1, 2] = 5.0  # D believes option 1 of caption 2 most
    picked = hardest(options, scores)
    assert torch.equal(picked[2], options[1, 2])
    assert torch.equal(picked[0], options[0, 0])
