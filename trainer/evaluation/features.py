"""Feature extractors for the metrics: uint8 images in, (features, class probabilities) out.

Each extractor has a `fingerprint` (the SHA-256 of its weights) so cached real-data statistics
are never reused with another network, and says which input size it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F


class DigitFeatures:
    """The shipped digit CNN: for 1-channel 32x32 images only (the embedded digits)."""

    name = "digits"

    def __init__(self, weights: Optional[Path] = None):
        from trainer.evaluation import digit_features

        path = Path(weights) if weights else digit_features.WEIGHTS
        # A user-built file has no pinned hash; the shipped one must match its pin.
        self.net = digit_features.load(path, digit_features.WEIGHTS_SHA256 if weights is None else None)
        self.fingerprint = digit_features.file_sha256(path)
        self.to_input = digit_features.to_input
        self.shape = (digit_features.CHANNELS, digit_features.RESOLUTION, digit_features.RESOLUTION)

    def check_images(self, channels: int, resolution: int, what: str) -> None:
        if (channels, resolution, resolution) != self.shape:
            raise ValueError(
                f"{what} is {channels}x{resolution}x{resolution} but --features digits reads "
                f"{'x'.join(map(str, self.shape))} images (the embedded digits); use "
                "--features inception --inception-weights FILE for other data"
            )

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        features, logits = self.net(self.to_input(images))
        return features.double().numpy(), logits.double().softmax(1).numpy()


class InceptionFeatures:
    """The 2015-12-05 Inception v3 that published FIDs use, from a local safetensors file."""

    name = "inception"

    def __init__(self, weights: Path, sha256: Optional[str]):
        from trainer.evaluation import inception

        self.net = inception.load(weights, sha256)
        self.fingerprint = inception.file_sha256(Path(weights))

    def check_images(self, channels: int, resolution: int, what: str) -> None:
        if channels not in (1, 3):
            raise ValueError(f"{what} has {channels} channels; Inception reads grayscale or RGB")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        x = images.float()
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        # The reference resizes uint8 images to 299x299 bilinearly before the network.
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        features, logits = self.net(x)
        return features.double().numpy(), logits.double().softmax(1).numpy()


def build_extractor(kind: str, *, weights: Optional[Path] = None, sha256: Optional[str] = None):
    if kind == "digits":
        return DigitFeatures(weights)
    if kind == "inception":
        if weights is None:
            raise ValueError(
                "--features inception needs --inception-weights FILE (a safetensors file made by "
                "`python -m trainer.evaluation.inception convert`)"
            )
        return InceptionFeatures(weights, sha256)
    raise ValueError(f"--features {kind!r}: valid choices are digits, inception")
