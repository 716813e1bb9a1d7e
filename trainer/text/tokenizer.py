"""A word-level tokenizer built from the training captions, stored as JSON (never pickle).

Words are lower-cased runs of letters/digits; punctuation marks are tokens of their own. Id 0 is
the unknown word; ids 1.. are the vocabulary, most frequent first (ties alphabetical, so the same
captions always give the same ids). Encoded captions are padded with PAD = -1 to the context
length: `ids >= 0` is the attention mask.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from typing import Iterable, Optional

PAD = -1
UNK = 0
KIND = "hiresgan-words"
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


class TokenizerError(ValueError):
    """Bad tokenizer JSON or an unusable prompt; the message names what to fix."""


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def count_words(captions: Iterable[str]) -> dict[str, int]:
    """Word counts over captions (several captions per text: one per line)."""
    counts: Counter = Counter()
    for text in captions:
        counts.update(words(text))
    return dict(sorted(counts.items()))


class WordTokenizer:
    def __init__(self, vocab: list[str], context: int):
        if context < 1:
            raise TokenizerError(f"tokenizer context length must be >= 1, got {context}")
        self.vocab, self.context = list(vocab), int(context)
        self.index = {w: i + 1 for i, w in enumerate(self.vocab)}

    @property
    def num_tokens(self) -> int:
        """Rows of the embedding table: the vocabulary plus the unknown word."""
        return len(self.vocab) + 1

    @classmethod
    def from_counts(cls, counts: dict[str, int], *, context: int, max_words: int) -> "WordTokenizer":
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls([w for w, _ in ranked[:max_words]], context)

    def to_json(self) -> dict:
        return {"kind": KIND, "vocab": self.vocab, "context": self.context}

    @classmethod
    def from_json(cls, data: dict, *, source: str = "tokenizer") -> "WordTokenizer":
        if not isinstance(data, dict) or data.get("kind") != KIND or not isinstance(data.get("vocab"), list):
            raise TokenizerError(
                f"{source}: not a hiresgan word tokenizer (expected {{'kind': '{KIND}', "
                "'vocab': [...], 'context': N}})"
            )
        return cls([str(w) for w in data["vocab"]], int(data.get("context", 16)))

    def encode(self, text: str, *, warn: bool = False, source: str = "prompt") -> list[int]:
        """Ids padded with PAD to the context length. Unknown words map to UNK (with a warning
        naming them when `warn`); text past the context is cut (warned too); empty text fails."""
        tokens = words(text)
        if not tokens:
            raise TokenizerError(f"{source} is empty ({text!r}); give a caption with at least one word")
        ids = [self.index.get(w, UNK) for w in tokens]
        if warn:
            unknown = sorted({w for w in tokens if w not in self.index})
            if unknown:
                warnings.warn(
                    f"{source}: word(s) never seen in training: {', '.join(unknown)} (encoded as the unknown word)",
                    stacklevel=2,
                )
            if len(ids) > self.context:
                warnings.warn(
                    f"{source}: {len(ids)} tokens, cut to the context length {self.context} "
                    f"(dropped: {' '.join(tokens[self.context :])})",
                    stacklevel=2,
                )
        ids = ids[: self.context]
        return ids + [PAD] * (self.context - len(ids))


def load_tokenizer(data: Optional[dict], *, source: str) -> WordTokenizer:
    if data is None:
        raise TokenizerError(f"{source}: no tokenizer")
    return WordTokenizer.from_json(data, source=source)
