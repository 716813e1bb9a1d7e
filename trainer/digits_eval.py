"""Does a generator trained on the embedded digits really draw digits?

Uses the shipped digit network (`trainer.evaluation.digit_features`, ~97% held-out accuracy on
the real digits) to report, for samples drawn from an export:
- `class_accuracy`: for a conditional generator, the share of samples recognized as the class
  that was asked for (per class too);
- `digits_covered` / `predicted_histogram`: which of the ten digits appear;
- `digits_fid`, `digits_kid`, `precision`, `recall`: the sample set against all 1,797 real
  digits in that network's 64 features. Comparable between digit runs, not to published FIDs.

    python -m trainer.digits_eval runs/digits/export [--per-class 100] [--out report.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from trainer.digits import load_digit_arrays
from trainer.evaluation import metrics
from trainer.evaluation.features import DigitFeatures
from trainer.export import load_generator
from trainer.sample import generate


def _pixels(images: torch.Tensor) -> torch.Tensor:
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)  # as saved PNGs


@torch.no_grad()
def evaluate(export: Path, *, per_class: int = 100, truncation: float = 1.0, seed: int = 0) -> dict:
    G, _ = load_generator(export)
    if G.img_channels != 1 or G.img_resolution != 32:
        raise ValueError(f"{export}: the digits check needs a 1-channel 32x32 generator, got "
                         f"{G.img_channels}x{G.img_resolution}x{G.img_resolution}")
    extractor = DigitFeatures()
    report: dict = {"export": str(export), "per_class": per_class, "truncation": truncation}
    seeds = list(range(seed * 100_000, seed * 100_000 + per_class * 10))
    features, predicted = [], []
    if G.c_dim:
        correct = []
        for k in range(G.c_dim):
            f, p = extractor(_pixels(generate(G, seeds[k * per_class:(k + 1) * per_class], k, truncation=truncation)))
            features.append(f)
            predicted.append(p.argmax(1))
            correct.append(float((p.argmax(1) == k).mean()))
        report["class_accuracy"] = float(np.mean(correct))
        report["accuracy_per_class"] = [round(a, 4) for a in correct]
    else:
        f, p = extractor(_pixels(generate(G, seeds, None, truncation=truncation)))
        features.append(f)
        predicted.append(p.argmax(1))
    counts = np.bincount(np.concatenate(predicted), minlength=10)
    report["digits_covered"] = int((counts > 0).sum())
    report["predicted_histogram"] = counts.tolist()
    real_images, _ = load_digit_arrays()
    real = extractor(torch.from_numpy(real_images).unsqueeze(1))[0]
    fake = np.concatenate(features)
    report["digits_fid"] = metrics.fid(real, fake)
    report["digits_kid"] = metrics.kid(real, fake, subsets=50, subset_size=min(1000, len(fake)))[0]
    report["precision"], report["recall"] = metrics.precision_recall(real, fake)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="export folder or run directory")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--truncation", type=float, default=1.0)
    parser.add_argument("--out", type=Path, help="write the report as JSON here too")
    args = parser.parse_args(argv)
    report = evaluate(args.export, per_class=args.per_class, truncation=args.truncation)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
