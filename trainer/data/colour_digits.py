"""The embedded text-to-image default: scikit-learn's real digits rendered in colour, with captions.

Each 8x8 digit is upscaled to 24x24 (bicubic, as `trainer.data.digits`) and centred on a 32x32
RGB canvas with a 4-pixel margin; its intensity is the alpha of the ink colour over the
background colour. The colours are the eight corners of the RGB cube (COLOURS, index 0..7); ink
and background always differ. Every sample carries eight captions (four templates, the digit as
a numeral or a word), one per line of its `.txt` member.

Compositional generalization is the point: the (digit, ink) pairs with (digit + ink) % 7 == 0
are never written to the training shards (`withheld`), yet the model is asked to draw them.
A fixed tenth of the real digits (HELDOUT_SHARE) is never trained on either: it measures the
attribute reader's ceiling (trainer/evaluation/text_alignment.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = ("black", "white", "red", "green", "blue", "yellow", "cyan", "magenta")
RGB = np.array([(0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0),
                (0, 255, 255), (255, 0, 255)], dtype=np.float32)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = ("a {ink} {digit} on a {background} background",
             "the digit {digit}, drawn in {ink} on {background}",
             "{digit} in {ink} ink over {background}",
             "{background} background with a {ink} {digit}")
CANVAS, GLYPH, MARGIN = 32, 24, 4
RENDERS_PER_DIGIT = 8  # colourings of each training digit written to the shards
HELDOUT_SHARE = 0.1
SHARDS = 8
DATASET = "sklearn-digits-colour-captions"


def withheld(digit: int, ink: int) -> bool:
    """The (digit, ink) pairs training never shows."""
    return (digit + ink) % 7 == 0


def captions(digit: int, ink: int, background: int) -> list[str]:
    """Every caption of one (digit, ink, background): each template with the numeral and the word."""
    out = []
    for template in TEMPLATES:
        for name in (str(digit), DIGIT_WORDS[digit]):
            out.append(template.format(digit=name, ink=COLOURS[ink], background=COLOURS[background]))
    return out


def prompt(digit: int, ink: int, background: int) -> str:
    """The prompt the quality gate asks for, e.g. 'a red seven on a blue background'."""
    return TEMPLATES[0].format(digit=DIGIT_WORDS[digit], ink=COLOURS[ink], background=COLOURS[background])


def all_triples() -> list[tuple[int, int, int]]:
    """The 560 (digit, ink, background) combinations, ink != background."""
    return [(d, i, b) for d in range(10) for i in range(8) for b in range(8) if i != b]


def glyph_alphas() -> tuple[np.ndarray, np.ndarray]:
    """Every real digit as float alpha [N, 24, 24] in [0, 1] and its label [N]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = np.clip(bunch.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(im, mode="L").resize((GLYPH, GLYPH), Image.BICUBIC)) for im in small])
    return big.astype(np.float32) / 255.0, bunch.target.astype(np.int64)


def split() -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training digits and of the held-out digits (fixed)."""
    n = len(glyph_alphas()[1])
    order = np.random.default_rng(0).permutation(n)
    cut = int(round(n * HELDOUT_SHARE))
    return np.sort(order[cut:]), np.sort(order[:cut])


def render(alpha: np.ndarray, ink: int, background: int) -> np.ndarray:
    """alpha [24, 24] in [0, 1] -> uint8 [32, 32, 3]: ink over background, centred."""
    a = np.zeros([CANVAS, CANVAS, 1], np.float32)
    a[MARGIN:MARGIN + GLYPH, MARGIN:MARGIN + GLYPH, 0] = alpha
    image = RGB[background] * (1 - a) + RGB[ink] * a
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def training_samples(seed: int = 0, renders: int = RENDERS_PER_DIGIT):
    """(key, image, digit, ink, background) of every training sample, in a fixed order."""
    alphas, labels = glyph_alphas()
    train, _ = split()
    rng = np.random.default_rng(seed)
    for index in train:
        digit = int(labels[index])
        inks = [i for i in range(8) if not withheld(digit, i)]
        for r in range(renders):
            ink = int(inks[rng.integers(len(inks))])
            background = int([b for b in range(8) if b != ink][rng.integers(7)])
            yield f"{int(index):05d}{r:02d}", render(alphas[index], ink, background), digit, ink, background


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(payload), 0, 0o644  # fixed: byte-identical shards
    tar.addfile(info, io.BytesIO(payload))


def write_colour_digit_shards(out_dir: Path, *, shards: int = SHARDS, renders: int = RENDERS_PER_DIGIT) -> Path:
    """Write the captioned colour digits to out_dir/shard-*.tar + manifest.json (via a temp folder)."""
    from trainer.text.tokenizer import count_words

    out_dir = Path(out_dir)
    samples = list(training_samples(renders=renders))
    order = np.random.default_rng(1).permutation(len(samples))  # every shard gets every kind
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    entries, all_captions = [], []
    for shard, chunk in enumerate(np.array_split(order, shards)):
        path = tmp / f"shard-{shard:06d}.tar"
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in chunk:
                key, image, digit, ink, background = samples[i]
                png = io.BytesIO()
                Image.fromarray(image, mode="RGB").save(png, format="PNG", compress_level=6)
                text = "\n".join(captions(digit, ink, background))
                all_captions.append(text)
                _add(tar, f"{key}.png", png.getvalue())
                _add(tar, f"{key}.txt", text.encode())
                _add(tar, f"{key}.json", json.dumps({"digit": digit, "ink": COLOURS[ink],
                                                     "background": COLOURS[background]}).encode())
        entries.append({"name": path.name, "samples": len(chunk), "bytes": path.stat().st_size,
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    manifest = {"dataset": DATASET, "samples": len(samples), "resolution": CANVAS, "channels": 3, "format": "png",
                "num_classes": 0, "labelled": False, "captioned": True, "caption_words": count_words(all_captions),
                "withheld": "(digit, ink) pairs with (digit + ink index) % 7 == 0", "colours": list(COLOURS),
                "shards": entries, "urls": f"shard-{{000000..{shards - 1:06d}}}.tar"}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir / "manifest.json"


def ensure_colour_digit_shards(out_dir: Path) -> Path:
    manifest = Path(out_dir) / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        if data.get("dataset") == DATASET and all((Path(out_dir) / e["name"]).is_file() for e in data["shards"]):
            return manifest
    return write_colour_digit_shards(Path(out_dir))
