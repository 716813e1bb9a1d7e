"""Is a synthetic set worth adding to a few real images? The CAS classifier, measured three ways.

    python -m trainer.evaluation.augmentation --real data/digits --synth data/synth-digits \\
        --real-per-class 5,10,20 [--synth-per-class 100] [--synth-share 0.5] [--out table.json]

For each N of --real-per-class, the classifier of trainer/evaluation/cas.py (same network, seed
and 300-step schedule) is trained on
  * real:      N real images per class,
  * real+synth: the same N real images per class plus M synthetic ones (all of --synth, or the
    first M per class with --synth-per-class), drawn uniformly from their union, or, with
    --synth-share F, a share F of every batch from the synthetic ones and the rest from the real
    ones (as data.mix.fraction does for GAN training),
  * synth:     the M synthetic images per class alone (the CAS of the set; one row),
and every classifier is tested on the same real images: per class, a seeded permutation (the
one CAS uses) gives the training pool its first max(N) images and the test set all the others,
so no tested image is trained on and every row of the table shares one test set. --synth is
any labelled shard set, e.g. `hiresgan synth` output. docs/SYNTH.md has the table for the digits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional

import torch

from trainer.evaluation.cas import DESCRIPTION, CASError, accuracy, read_labelled, split_real, train_classifier


def first_per_class(labels: torch.Tensor, pool: list[int], n: int) -> list[int]:
    """The first n indices of each class in `pool` (pool in the seeded order of split_real)."""
    taken: dict[int, int] = {}
    out = []
    for i in pool:
        k = int(labels[i])
        if taken.get(k, 0) < n:
            taken[k] = taken.get(k, 0) + 1
            out.append(i)
    return out


def table(
    real: tuple,
    synth: tuple,
    real_per_class: list[int],
    *,
    synth_per_class: Optional[int] = None,
    synth_share: Optional[float] = None,
    seed: int = 0,
    steps: Optional[int] = None,
) -> dict:
    """The rows described in the module docstring; accuracies in 0..1."""
    images, labels = real
    s_images, s_labels = synth
    classes = sorted(set(labels.tolist()))
    num_classes = max(max(classes), int(s_labels.max())) + 1
    pool, test = split_real(labels, classes, max(real_per_class), seed=seed)
    # split_real lists each class's pool in its seeded order, so a prefix per class is a smaller pool
    if synth_per_class:
        s_keep = first_per_class(s_labels, list(range(len(s_labels))), synth_per_class)
        s_images, s_labels = s_images[s_keep], s_labels[s_keep]
    counts = torch.bincount(s_labels, minlength=num_classes)
    test_x, test_y = images[test], labels[test]

    def row(name: str, x: torch.Tensor, y: torch.Tensor, n_real: int, weights=None) -> dict:
        net = train_classifier(x, y, num_classes, seed=seed, steps=steps, weights=weights)
        acc, per = accuracy(net, test_x, test_y, num_classes)
        return {
            "train": name,
            "real_per_class": n_real,
            "synth_per_class": int(counts.max()) if "synth" in name else 0,
            "accuracy": acc,
            "per_class": {str(k): per[k] for k in classes},
        }

    rows = []
    for n in sorted(real_per_class):
        idx = first_per_class(labels, pool, n)
        rows.append(row("real", images[idx], labels[idx], n))
        weights = None
        if synth_share is not None:  # share F of each batch synthetic, 1 - F real
            weights = torch.cat(
                [
                    torch.full((len(idx),), (1 - synth_share) / len(idx)),
                    torch.full((len(s_labels),), synth_share / len(s_labels)),
                ]
            )
        rows.append(
            row("real+synth", torch.cat([images[idx], s_images]), torch.cat([labels[idx], s_labels]), n, weights)
        )
    rows.append(row("synth", s_images, s_labels, 0))
    return {
        "rows": rows,
        "num_test": len(test),
        "classifier": DESCRIPTION,
        "seed": seed,
        "synth_share": synth_share,
        "synth_counts": counts.tolist(),
    }


def markdown(result: dict) -> str:
    lines = ["| trained on | real / class | synthetic / class | accuracy on real test |", "|---|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['train']} | {r['real_per_class']} | {r['synth_per_class']} | {100 * r['accuracy']:.1f}% |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.evaluation.augmentation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--real", required=True, help="labelled real shards (folder, manifest or brace pattern)")
    parser.add_argument("--synth", required=True, help="labelled synthetic shards, e.g. `hiresgan synth` output")
    parser.add_argument("--real-per-class", default="5,10,20", help="comma-separated N (default 5,10,20)")
    parser.add_argument("--synth-per-class", type=int, default=0, help="use the first M per class (0: all)")
    parser.add_argument(
        "--synth-share",
        type=float,
        default=None,
        help="real+synth rows: this share of every batch synthetic (default: uniform over the union)",
    )
    parser.add_argument("--resolution", type=int, default=32, help="decode size of both sets (default 32)")
    parser.add_argument("--channels", type=int, default=1, help="1 or 3 (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    try:
        ns = [int(v) for v in args.real_per_class.split(",") if v.strip()]
        if not ns or min(ns) < 1:
            raise ValueError
    except ValueError:
        print(
            f"augmentation: error: --real-per-class {args.real_per_class!r}: comma-separated counts >= 1",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    try:
        real = read_labelled(args.real, resolution=args.resolution, channels=args.channels)
        synth = read_labelled(args.synth, resolution=args.resolution, channels=args.channels)
        if args.synth_share is not None and not 0 < args.synth_share < 1:
            raise ValueError(f"--synth-share {args.synth_share}: must lie strictly between 0 and 1")
        result = table(
            real, synth, ns, synth_per_class=args.synth_per_class or None, synth_share=args.synth_share, seed=args.seed
        )
    except (CASError, ValueError, FileNotFoundError) as exc:
        print(f"augmentation: error: {exc}", file=sys.stderr)
        return 2
    result.update(real=args.real, synth=args.synth, seconds=round(time.perf_counter() - started, 1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
