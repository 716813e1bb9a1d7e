"""Does a generator trained on the embedded digits really draw digits?

Uses the shipped digit network (`trainer.evaluation.digit_features`, ~97% held-out accuracy on
the real digits) to report, for samples drawn from an export:
- `class_accuracy`: for a conditional generator, the share of samples recognized as the class
  that was asked for (per class too);
- `digits_covered`: how many of the ten digits are clearly drawn: a digit counts when at least
  COVERED_SHARE of the samples are recognized as it with probability >= CONFIDENT (a blotch
  that the network happens to call a "1" once does not); `digits_seen` counts any prediction,
  `confident_share` is the share of samples recognized with that confidence at all, and
  `predicted_histogram` the argmax counts;
- `digits_fid`, `digits_kid`, `precision`, `recall`: the sample set against all 1,797 real
  digits in that network's 64 features. Comparable between digit runs, not to published FIDs.

    python -m trainer.evaluation.digits_gate runs/digits/export [--per-class 100] [--out report.json] [--check]

`--check` turns the report into a pass/fail quality gate (exit status 1 on a miss): every
generator needs all ten digits covered, a conditional one also class_accuracy >= MIN_ACCURACY.
`make quality-<config>` trains a config and runs this gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from trainer.data.digits import load_digit_arrays
from trainer.evaluation import scores
from trainer.evaluation.features import DigitFeatures
from trainer.export import load_generator
from trainer.sampling.latents import generate

MIN_ACCURACY = 0.90  # the quality bar for conditional generators
CONFIDENT = 0.8  # softmax probability for a sample to count as a clearly drawn digit
COVERED_SHARE = 0.02  # share of all samples a digit needs (uniform would be 0.10) to count as covered


def _pixels(images: torch.Tensor) -> torch.Tensor:
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)  # as saved PNGs


def coverage(predicted: np.ndarray, confidence: np.ndarray) -> dict:
    """Which digits the samples draw, from the classifier's argmax and its probability."""
    confident = confidence >= CONFIDENT
    counts = np.bincount(predicted, minlength=10)
    confident_counts = np.bincount(predicted[confident], minlength=10)
    return {
        "digits_covered": int((confident_counts >= COVERED_SHARE * len(predicted)).sum()),
        "digits_seen": int((counts > 0).sum()),
        "confident_share": round(float(confident.mean()), 4),
        "predicted_histogram": counts.tolist(),
        "confident_histogram": confident_counts.tolist(),  # what digits_covered counts
    }


@torch.no_grad()
def evaluate(export: Path, *, per_class: int = 100, truncation: float = 1.0, seed: int = 0) -> dict:
    G, _ = load_generator(export)
    if G.img_channels != 1 or G.img_resolution != 32:
        raise ValueError(
            f"{export}: the digits check needs a 1-channel 32x32 generator, got "
            f"{G.img_channels}x{G.img_resolution}x{G.img_resolution}"
        )
    extractor = DigitFeatures()
    report: dict = {"export": str(export), "per_class": per_class, "truncation": truncation}
    seeds = list(range(seed * 100_000, seed * 100_000 + per_class * 10))
    features, probabilities = [], []
    if G.c_dim:
        correct = []
        for k in range(G.c_dim):
            f, p = extractor(_pixels(generate(G, seeds[k * per_class : (k + 1) * per_class], k, truncation=truncation)))
            features.append(f)
            probabilities.append(p)
            correct.append(float((p.argmax(1) == k).mean()))
        report["class_accuracy"] = float(np.mean(correct))
        report["accuracy_per_class"] = [round(a, 4) for a in correct]
    else:
        f, p = extractor(_pixels(generate(G, seeds, None, truncation=truncation)))
        features.append(f)
        probabilities.append(p)
    p = np.concatenate(probabilities)
    report.update(coverage(p.argmax(1), p.max(1)))
    real_images, _ = load_digit_arrays()
    real = extractor(torch.from_numpy(real_images).unsqueeze(1))[0]
    fake = np.concatenate(features)
    report["digits_fid"] = scores.fid(real, fake)
    report["digits_kid"] = scores.kid(real, fake, subsets=50, subset_size=min(1000, len(fake)))[0]
    report["precision"], report["recall"] = scores.precision_recall(real, fake)
    return report


def quality_misses(report: dict) -> list[str]:
    """What keeps a report below the quality bar (empty: it passes): every generator must draw
    all ten digits clearly, a conditional one also the class it was asked for."""
    misses = []
    if "class_accuracy" in report and report["class_accuracy"] < MIN_ACCURACY:
        misses.append(
            f"class accuracy {report['class_accuracy']:.1%} < {MIN_ACCURACY:.0%} "
            f"(per class {report['accuracy_per_class']})"
        )
    missing = 10 - report["digits_covered"]
    if missing:
        histogram = report.get("confident_histogram", report["predicted_histogram"])
        misses.append(
            f"{missing} of the ten digits not clearly drawn (samples per digit recognized with "
            f"p >= {CONFIDENT}: {histogram}; each needs {COVERED_SHARE:.0%} of the samples)"
        )
    return misses


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="export folder or run directory")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--truncation", type=float, default=1.0)
    parser.add_argument("--out", type=Path, help="write the report as JSON here too")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless all ten digits are covered and (conditional models) class accuracy >= "
        f"{MIN_ACCURACY * 100:.0f}%%",
    )
    args = parser.parse_args(argv)
    report = evaluate(args.export, per_class=args.per_class, truncation=args.truncation)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.check:
        misses = quality_misses(report)
        for miss in misses:
            print(f"digits_eval: below the quality bar: {miss}", file=sys.stderr)
        if misses:
            return 1
        print("digits_eval: quality bar met", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
