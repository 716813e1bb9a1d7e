"""Does an edges2digits export (pix2pix, or the unpaired CycleGAN default translating A -> B) turn
edge maps back into the digits they came from?

The held-out (odd-indexed, never trained on) digits' Canny edge maps (`trainer.data.edges2digits`)
are translated by the export, and the shipped digit network (`trainer.evaluation.digit_features`,
as in `trainer.evaluation.digits_gate`) reads each translation; `accuracy` is the share read as
the digit its edge map came from. For reference the report also has the network's accuracy on
the raw edge maps (about 24%: the edges alone do not look like digits to it) and on the real
digits (about 97%).

    python -m trainer.evaluation.edges2digits_gate runs/edges2digits/export [--out report.json] [--check]

`--split domain_a` reads the translations of the unpaired default's own domain-A edge maps instead
(`trainer.data.unpaired_digits`: trained on as edges, but their digits and labels never reach
CycleGAN). That is the number to tune a config on; the held-out digits only judge the result.

`--check` exits 1 when accuracy < MIN_ACCURACY (pix2pix) or MIN_ACCURACY_UNPAIRED (cyclegan, which
never sees an edge map beside its digit). `make quality-edges2digits` and
`make quality-cyclegan_edges2digits` train their configs and run this gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from trainer.data.digits import RESOLUTION, load_digit_arrays
from trainer.data.edges2digits import edge_maps, eval_pairs
from trainer.data.unpaired_digits import domain_indices
from trainer.evaluation.features import DigitFeatures
from trainer.export import load_generator

MIN_ACCURACY = 0.90
MIN_ACCURACY_UNPAIRED = 0.80
SPLITS = ("held_out", "domain_a")


def split_pairs(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edges, digits, labels) to translate: the held-out odd-indexed digits, or domain A's."""
    if split == "held_out":
        return eval_pairs()
    if split == "domain_a":
        digits, labels = load_digit_arrays(RESOLUTION)
        idx = domain_indices(len(digits))[0]
        return edge_maps(digits[idx]), digits[idx], labels[idx]
    raise ValueError(f"split={split!r}; valid choices: {', '.join(SPLITS)}")


def _pixels(images: torch.Tensor) -> torch.Tensor:
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)  # as saved PNGs


def _accuracy(extractor: DigitFeatures, pixels: torch.Tensor, labels: np.ndarray) -> tuple[float, list[float]]:
    probabilities = extractor(pixels)[1]
    predicted = probabilities.argmax(1)
    per_class = [float((predicted[labels == k] == k).mean()) for k in range(10)]
    return float((predicted == labels).mean()), per_class


@torch.no_grad()
def evaluate(export: Path, *, batch: int = 128, split: str = "held_out") -> dict:
    G, description = load_generator(export)
    family = description["family"]
    in_channels = G.img_channels if family == "cyclegan" else getattr(G, "in_channels", None)
    if family not in ("pix2pix", "cyclegan") or (in_channels, G.img_channels) != (1, 1):
        raise ValueError(
            f"{export}: the edges2digits gate needs a pix2pix or cyclegan export from 1-channel edges "
            f"to 1-channel digits, got family {family}"
        )
    edges, digits, labels = split_pairs(split)
    x = torch.from_numpy(edges).unsqueeze(1).float() / 127.5 - 1
    c = None
    if G.c_dim:  # a class-conditional G gets the true label, as a user of it would give
        c = torch.nn.functional.one_hot(torch.from_numpy(labels), G.c_dim).float()
    if family == "cyclegan":  # unpaired: domain A (edges) -> B (digits)
        translate = lambda x, c: G(x, direction="ab")
    else:
        translate = G
    out = torch.cat(
        [translate(x[i : i + batch], None if c is None else c[i : i + batch]) for i in range(0, len(x), batch)]
    )
    extractor = DigitFeatures()
    accuracy, per_class = _accuracy(extractor, _pixels(out), labels)
    edge_accuracy, _ = _accuracy(extractor, torch.from_numpy(edges).unsqueeze(1), labels)
    real_accuracy, _ = _accuracy(extractor, torch.from_numpy(digits).unsqueeze(1), labels)
    l1 = float((out - (torch.from_numpy(digits).unsqueeze(1).float() / 127.5 - 1)).abs().mean())
    return {
        "export": str(export),
        "split": split,
        "held_out_digits" if split == "held_out" else "digits": int(len(labels)),
        "accuracy": round(accuracy, 4),
        "accuracy_per_class": [round(a, 4) for a in per_class],
        "raw_edges_accuracy": round(edge_accuracy, 4),
        "real_digits_accuracy": round(real_accuracy, 4),
        "l1_to_real": round(l1, 4),
        "conditional": bool(G.c_dim),
        "family": family,
        "bar": MIN_ACCURACY_UNPAIRED if family == "cyclegan" else MIN_ACCURACY,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="export folder or run directory")
    parser.add_argument("--out", type=Path, help="write the report as JSON here too")
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="held_out",
        help="held_out: the odd-indexed digits (the gate); domain_a: the cyclegan default's training "
        "edge maps, whose digits it never saw (to tune on)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 unless accuracy >= {MIN_ACCURACY * 100:.0f}%% "
        f"({MIN_ACCURACY_UNPAIRED * 100:.0f}%% for an unpaired cyclegan export)",
    )
    args = parser.parse_args(argv)
    report = evaluate(args.export, split=args.split)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.check:
        if report["accuracy"] < report["bar"]:
            print(
                f"edges2digits_gate: below the quality bar: accuracy {report['accuracy']:.1%} < "
                f"{report['bar']:.0%} (per class {report['accuracy_per_class']})",
                file=sys.stderr,
            )
            return 1
        print("edges2digits_gate: quality bar met", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
