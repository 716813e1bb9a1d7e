"""The built-in feature network for the embedded digits: a small CNN trained on the real digits.

Inception features (what published FIDs use) mean nothing on 32x32 grayscale digits and need
weights we cannot download, so the digits get their own network: three conv layers, global
average pooling to 64 features (the FID features, like Inception's pool3) and a linear layer to
the 10 classes (the IS probabilities). Its weights ship with hiresgan as safetensors, built once by

    python -m trainer.evaluation.digit_features --build

and pinned by SHA-256 below, so every machine computes the same "digits FID". These numbers are
comparable between digit runs only, never to published FIDs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS = Path(__file__).resolve().parent / "weights" / "digits-features.safetensors"
# SHA-256 of the shipped weights; a mismatch means the file was changed or damaged.
WEIGHTS_SHA256 = "387fd6e512eec2fc6a08ef4b46f3f53a9a7429ef1ea954172c9f562968ca3779"
RESOLUTION, CHANNELS, FEATURES, CLASSES = 32, 1, 64, 10


class DigitNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 16x16
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8
            nn.Conv2d(32, FEATURES, 3, padding=1),
            nn.ReLU(),  # 8x8
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )  # [N, 64]
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(FEATURES, CLASSES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: float [N, 1, 32, 32] in [-1, 1] -> (features [N, 64], logits [N, 10])."""
        features = self.body(x)
        return features, self.head(features)


def to_input(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float().div(127.5).sub(1)


def train(*, seed: int = 0, epochs: int = 20, holdout: float = 0.2) -> tuple[DigitNet, float]:
    """Train on the real digits (all but `holdout` of them); return the net and held-out accuracy."""
    from trainer.data.digits import load_digit_arrays

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images, labels = load_digit_arrays(RESOLUTION)
    x, y = to_input(torch.from_numpy(images).unsqueeze(1)), torch.from_numpy(labels)
    order = torch.from_numpy(rng.permutation(len(x)))
    n_test = int(len(x) * holdout)
    test, fit = order[:n_test], order[n_test:]
    net = DigitNet()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        net.train()
        for idx in fit[torch.from_numpy(rng.permutation(len(fit)))].split(64):
            # +-2 pixel shifts: generated digits are not perfectly centred either.
            dy, dx = (int(v) for v in rng.integers(-2, 3, size=2))
            loss = nn.functional.cross_entropy(net(torch.roll(x[idx], (dy, dx), (2, 3)))[1], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    accuracy = float("nan")
    if n_test:
        with torch.no_grad():
            accuracy = (net(x[test])[1].argmax(1) == y[test]).float().mean().item()
    return net, accuracy


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(path: Path = WEIGHTS, sha256: str | None = WEIGHTS_SHA256) -> DigitNet:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"digit feature weights '{path}' are missing: rebuild them with "
            "`python -m trainer.evaluation.digit_features --build`"
        )
    if sha256 is not None and file_sha256(path) != sha256:
        raise ValueError(
            f"'{path}' has SHA-256 {file_sha256(path)}, expected {sha256}: the shipped digit "
            "feature weights were changed; restore them from git"
        )
    net = DigitNet()
    net.load_state_dict(load_file(str(path)))
    return net.eval().requires_grad_(False)


@torch.no_grad()
def real_floor(seed: int = 0) -> dict:
    """Metrics of one random half of the real digits against the other, in the shipped features."""
    from trainer.data.digits import load_digit_arrays
    from trainer.evaluation import scores

    images, _ = load_digit_arrays(RESOLUTION)
    net = load()
    features, logits = net(to_input(torch.from_numpy(images).unsqueeze(1)))
    f = features.double().numpy()
    order = np.random.default_rng(seed).permutation(len(f))
    a, b = f[order[: len(f) // 2]], f[order[len(f) // 2 :]]
    precision, recall = scores.precision_recall(a, b)
    return {
        "fid": scores.fid(a, b),
        "kid": scores.kid(a, b, subset_size=len(a))[0],
        "precision": precision,
        "recall": recall,
        "is_all_real": scores.inception_score(logits.double().softmax(1).numpy())[0],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="build the shipped digit feature network")
    parser.add_argument("--build", action="store_true", help="train it and write the weights file")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="print the metrics of two random halves of the real digits (the best a model can hope for)",
    )
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args(argv)
    if args.floor:
        print(json.dumps(real_floor()))
        return 0
    if not args.build:
        parser.error("nothing to do: pass --build or --floor")
    net, accuracy = train()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(tensors, str(args.out), metadata={"heldout_accuracy": f"{accuracy:.4f}", "torch": torch.__version__})
    print(json.dumps({"weights": str(args.out), "sha256": file_sha256(args.out), "heldout_accuracy": accuracy}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
