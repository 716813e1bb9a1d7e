"""Does a generator trained on the embedded digits really draw digits?

Trains a small CNN on the real digits (the same 32x32 images the shards hold; ~98% held-out
accuracy), then classifies images sampled from an export: for a conditional generator, the share
of samples recognized as the class that was asked for; for any generator, which of the ten
digits appear among samples drawn with random classes (coverage).

    python -m trainer.digits_eval runs/digits/export [--per-class 100] [--out report.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainer.digits import load_digit_arrays
from trainer.export import load_generator
from trainer.sample import generate


def _classifier() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 16x16
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8x8
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 8 * 8, 10))


def _to_input(images_uint8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images_uint8).float().div(127.5).sub(1).unsqueeze(1)


def train_classifier(*, seed: int = 0, epochs: int = 15, holdout: float = 0.0) -> tuple[nn.Module, float]:
    """A digit classifier on the real digits; returns it and its held-out accuracy (nan if none)."""
    torch.manual_seed(seed)
    images, labels = load_digit_arrays()
    x, y = _to_input(images), torch.from_numpy(labels)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(x) * holdout)
    test, train = order[:n_test], order[n_test:]
    model = _classifier()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(epochs):
        model.train()
        for idx in train[torch.randperm(len(train))].split(64):
            xb = x[idx]
            # +-2 pixel shifts: generated digits are not perfectly centred either.
            dx, dy = np.random.randint(-2, 3, size=2)
            xb = torch.roll(xb, shifts=(int(dy), int(dx)), dims=(2, 3))
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    accuracy = float("nan")
    if n_test:
        with torch.no_grad():
            accuracy = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    return model, accuracy


def evaluate(export: Path, *, per_class: int = 100, truncation: float = 1.0, seed: int = 0) -> dict:
    G, _ = load_generator(export)
    if G.img_channels != 1 or G.img_resolution != 32:
        raise ValueError(f"{export}: the digits check needs a 1-channel 32x32 generator, got "
                         f"{G.img_channels}x{G.img_resolution}x{G.img_resolution}")
    classifier, _ = train_classifier(seed=seed)
    with torch.no_grad():
        return _score(G, classifier, export=export, per_class=per_class, truncation=truncation, seed=seed)


def _score(G, classifier, *, export, per_class: int, truncation: float, seed: int) -> dict:
    report: dict = {"export": str(export), "per_class": per_class, "truncation": truncation}
    seeds = list(range(seed * 100_000, seed * 100_000 + per_class * 10))
    if G.c_dim:
        correct = []
        for k in range(G.c_dim):
            images = generate(G, seeds[k * per_class:(k + 1) * per_class], k, truncation=truncation)
            correct.append((classifier(images.float()).argmax(1) == k).float().mean().item())
        report["class_accuracy"] = float(np.mean(correct))
        report["accuracy_per_class"] = [round(a, 4) for a in correct]
        # "Unconditional" use of a conditional model: random classes, as a sampler would draw them.
        labels = np.random.default_rng(seed).integers(0, G.c_dim, len(seeds))
        predicted = torch.cat([classifier(generate(G, [s], int(k), truncation=truncation)).argmax(1)
                               for s, k in zip(seeds[:200], labels[:200])])
    else:
        predicted = classifier(generate(G, seeds, None, truncation=truncation)).argmax(1)
    counts = np.bincount(predicted.numpy(), minlength=10)
    report["digits_covered"] = int((counts > 0).sum())
    report["predicted_histogram"] = counts.tolist()
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
