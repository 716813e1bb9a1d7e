"""The sample decoder of captioned shards: the image plus one of its captions as token ids.

A sample's `.txt` member holds one caption per line (the WebDataset/img2dataset convention, with
several captions allowed); each time the sample is seen one line is drawn with the stream's
per-sample rng, so a resumed run draws the same captions. A missing or empty caption raises,
and `data.on_error` then skips the sample (counted) or stops the run naming shard and key.
"""

from __future__ import annotations

import numpy as np

from trainer.data.stream import decode_image


def caption_lines(sample: dict) -> list[str]:
    where = f"sample {sample.get('__key__')} in {sample.get('__url__')}"
    if "txt" not in sample:
        raise ValueError(f"{where} has no caption (.txt member); text2img shards need one per image")
    try:
        text = sample["txt"].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{where}: its caption is not UTF-8 text") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{where} has an empty caption")
    return lines


class CaptionDecoder:
    """Picklable (loader workers run it): {"image": uint8 [C, H, W], "tokens": int64 [L]}."""

    def __init__(self, tokenizer, *, resolution: int, channels: int):
        self.tokenizer, self.resolution, self.channels = tokenizer, resolution, channels

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        lines = caption_lines(sample)
        caption = lines[int(rng.integers(len(lines)))]
        tokens = self.tokenizer.encode(caption, source=f"caption of {sample.get('__key__')}")
        return {
            "image": decode_image(sample, self.resolution, self.channels),
            "tokens": np.asarray(tokens, dtype=np.int64),
        }
