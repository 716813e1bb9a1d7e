"""The builtin word tokenizer: built from caption words, JSON round trip, unknown/long/empty text."""

import json

import pytest

from trainer.text.tokenizer import PAD, UNK, TokenizerError, WordTokenizer, count_words, words


def tok(context=6):
    return WordTokenizer.from_counts(
        count_words(["a red 7 on a blue background", "the digit 7, drawn in red"]), context=context, max_words=100
    )


def test_words_split_punctuation_and_lowercase():
    assert words("The digit 7, drawn in RED") == ["the", "digit", "7", ",", "drawn", "in", "red"]


def test_ids_are_deterministic_and_padded():
    t = tok()
    assert t.vocab[:3] == ["7", "a", "red"]  # most frequent first, ties alphabetical
    ids = t.encode("a red 7")
    assert ids[:3] == [2, 3, 1] and ids[3:] == [PAD] * 3


def test_json_round_trip_is_plain_json():
    t = tok()
    data = json.loads(json.dumps(t.to_json()))
    again = WordTokenizer.from_json(data)
    assert again.vocab == t.vocab and again.encode("a blue 7") == t.encode("a blue 7")
    with pytest.raises(TokenizerError, match="not a hiresgan word tokenizer"):
        WordTokenizer.from_json({"vocab": []}, source="x.json")


def test_unknown_word_warns_by_name_and_maps_to_unk():
    with pytest.warns(UserWarning, match="purple"):
        ids = tok().encode("a purple 7", warn=True)
    assert ids[1] == UNK


def test_long_prompt_is_cut_with_a_warning_and_empty_prompt_fails():
    with pytest.warns(UserWarning, match="cut to the context length 3"):
        ids = tok(context=3).encode("a red 7 on a blue background", warn=True, source="--prompt")
    assert len(ids) == 3
    with pytest.raises(TokenizerError, match="--prompt is empty"):
        tok().encode("   ", source="--prompt")
