"""Real colour digits labelled by prompt: the real side of a text-to-image export's CAS (docs/SYNTH.md).

A text export's classes are prompts ("a white three on a black background"), and CAS tests a
classifier on real images labelled by prompt position. For the embedded colour digits
(trainer/data/colour_digits.py) those images are the real 8x8 digits that a prompt names,
rendered in its ink and background exactly as the training shards render them:

    python -m trainer.data.colour_digit_prompts OUT --prompts PROMPT [PROMPT ...]

writes two labelled shard sets (the shard writer's format, `KEY.png`, `KEY.cls` = the prompt's
position, `KEY.txt` = the prompt, `KEY.json` = digit, colours, source index, split):
  * OUT/heldout: every held-out digit (colour_digits.split(), never written to the training
    shards) of each prompt's digit: the test set (`hiresgan eval --data OUT/heldout`);
  * OUT/train: every training-split digit of each prompt's digit: what the ceiling classifier
    trains on (`--cas-ceiling-data OUT/train`; it takes --cas-per-class of each class).
So no image the GAN or either classifier trained on is ever tested on. Prompts follow the gate's
grammar, colour_digits.prompt(): "a {ink} {digit word} on a {background} background".
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from trainer.data import colour_digits as cd
from trainer.shards.manifest import SHARD_PATTERN, Manifest, ShardInfo, write_manifest
from trainer.shards.tarshard import ShardTar

SPLITS = ("heldout", "train")


class PromptShardError(ValueError):
    """A prompt outside the colour digits' grammar, or a bad output folder; names the flag."""


def parse_prompt(text: str) -> tuple[int, int, int]:
    """(digit, ink, background) of a prompt in colour_digits.prompt()'s grammar."""
    known = {cd.prompt(*triple): triple for triple in cd.all_triples()}
    triple = known.get(" ".join(text.strip().lower().split()))
    if triple is None:
        raise PromptShardError(
            f"--prompts {text!r}: not a colour-digit prompt; write it as "
            f"'{cd.prompt(3, 1, 0)}' (a {{ink}} {{digit word}} on a {{background}} background, colours "
            f"{', '.join(cd.COLOURS)}, ink != background)"
        )
    return triple


def write_prompt_sets(out: Path, prompts: Sequence[str]) -> dict[str, Manifest]:
    """Write OUT/heldout and OUT/train (see the module docstring); returns their manifests."""
    if not prompts:
        raise PromptShardError("--prompts: give at least one prompt (each one is a class)")
    if len(set(prompts)) != len(prompts):
        raise PromptShardError("--prompts names a prompt twice; give each prompt once")
    triples = [parse_prompt(p) for p in prompts]  # every prompt checked before anything is written
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise PromptShardError(f"OUT '{out}' is not empty; pick a new folder (or remove it first)")
    alphas, digits = cd.glyph_alphas()
    indices = dict(zip(SPLITS, cd.split()[::-1]))  # split() gives (train, heldout)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    manifests = {}
    for name in SPLITS:
        folder = partial / name
        folder.mkdir(parents=True)
        tar = ShardTar(str(folder / SHARD_PATTERN.format(0)))
        count = 0
        for index in indices[name]:  # source order; prompts of one digit each get it in their colours
            for label, (digit, ink, background) in enumerate(triples):
                if digit != int(digits[index]):
                    continue
                pixels = cd.render(alphas[index], ink, background)
                meta = {"digit": digit, "ink": cd.COLOURS[ink], "background": cd.COLOURS[background]}
                tar.add(
                    f"{int(index):05d}{label:03d}",
                    {
                        "png": png_bytes(pixels),
                        "cls": str(label).encode("ascii"),
                        "txt": prompts[label].encode("utf-8"),
                        "json": json.dumps({**meta, "index": int(index), "split": name}, sort_keys=True).encode(),
                    },
                )
                count += 1
        size, sha = tar.commit()
        manifests[name] = Manifest(
            num_samples=count,
            resolution=cd.CANVAS,
            channels=3,
            format="png",
            num_classes=len(prompts),
            class_names=list(prompts),
            labelled=True,
            urls=SHARD_PATTERN.format(0),
            shards=[ShardInfo(SHARD_PATTERN.format(0), 0, count, size, sha)],
            args={"prompts": list(prompts), "split": name, "heldout_share": cd.HELDOUT_SHARE},
            source=f"{cd.DATASET} ({name} split of trainer.data.colour_digits)",
            encoder={"generator": "trainer.data.colour_digit_prompts"},
            captioned=True,
        )
        write_manifest(str(folder), manifests[name])
    if out.exists():
        out.rmdir()  # empty, checked above
    os.replace(partial, out)
    return manifests


def png_bytes(pixels: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG bytes (zlib level 6, as the shard writer and synth)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.data.colour_digit_prompts",
        description="Real colour digits labelled by prompt position: OUT/heldout (CAS test set) and "
        "OUT/train (the CAS ceiling's training images).",
    )
    parser.add_argument("out", type=Path, help="new folder; gets heldout/ and train/ shard sets")
    parser.add_argument("--prompts", nargs="+", required=True, help="one per class, in label order")
    args = parser.parse_args(argv)
    try:
        manifests = write_prompt_sets(args.out, args.prompts)
    except PromptShardError as e:
        print(f"colour_digit_prompts: error: {e}", file=sys.stderr)
        return 2
    for name, manifest in manifests.items():
        print(f"wrote {args.out / name}: {manifest.num_samples} images, {manifest.num_classes} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
