"""The optional perceptual loss of ESRGAN: L1 between VGG features of SR and HR.

The VGG weights are never downloaded: the user passes a safetensors file (`sr.perceptual_weights`,
checked against `sr.perceptual_sha256` before training starts) holding the convolutions of a VGG
`features` stack under torchvision's names (`features.{i}.weight`, `features.{i}.bias`). Convert
torchvision's VGG19 once on a machine that has it:

    import torchvision, safetensors.torch
    sd = torchvision.models.vgg19(weights="IMAGENET1K_V1").features.state_dict()
    safetensors.torch.save_file({f"features.{k}": v for k, v in sd.items()}, "vgg19-features.safetensors")

The stack is rebuilt from the file alone: a conv at every index that has weights, a ReLU right
after it, a 2x2 max-pool at every other index in between (torchvision's layout); the loss compares
the output of the last conv before its ReLU (ESRGAN's "before activation" features). So a smaller
VGG-like file works the same way (the tests use a tiny random one).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

# ImageNet statistics the VGG weights were trained with (inputs in [0, 1]).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class PerceptualError(ValueError):
    pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PerceptualLoss(nn.Module):
    def __init__(self, tensors: dict[str, torch.Tensor]):
        super().__init__()
        convs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for key in tensors:
            m = re.fullmatch(r"features\.(\d+)\.weight", key)
            if m:
                i = int(m.group(1))
                bias = tensors.get(f"features.{i}.bias")
                if bias is None or tensors[key].ndim != 4:
                    raise PerceptualError(f"'{key}' is not a conv weight with a matching features.{i}.bias")
                convs[i] = (tensors[key], bias)
        if not convs:
            raise PerceptualError("holds no 'features.N.weight' tensors: not a VGG features stack")
        layers: list[nn.Module] = []
        last = max(convs)
        i = 0
        while i <= last:
            if i in convs:
                weight, bias = convs[i]
                conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], padding=weight.shape[2] // 2)
                conv.weight.data.copy_(weight)
                conv.bias.data.copy_(bias)
                layers.append(conv)
                if i == last:
                    break  # features before the activation
                layers.append(nn.ReLU(inplace=False))
                i += 2
            else:
                layers.append(nn.MaxPool2d(2))
                i += 1
        first = convs[min(convs)][0]
        if first.shape[1] != 3:
            raise PerceptualError(f"the first conv takes {first.shape[1]} channels; VGG features take RGB (3)")
        self.net = nn.Sequential(*layers).requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    @classmethod
    def from_file(cls, path: Path, *, sha256: str) -> "PerceptualLoss":
        """Load a weights file after checking its SHA-256 (never unpickled: safetensors only)."""
        path = Path(path)
        if not path.is_file():
            raise PerceptualError(f"sr.perceptual_weights: '{path}' does not exist")
        actual = _sha256(path)
        if actual != sha256.lower():
            raise PerceptualError(f"sr.perceptual_weights: '{path}' has SHA-256 {actual}, not {sha256}")
        try:
            tensors = load_file(str(path))
        except Exception as exc:  # not a safetensors file
            raise PerceptualError(f"sr.perceptual_weights: '{path}' is not a safetensors file ({exc})") from None
        try:
            return cls(tensors)
        except PerceptualError as exc:
            raise PerceptualError(f"sr.perceptual_weights: '{path}' {exc}") from None

    def train(self, mode: bool = True) -> "PerceptualLoss":
        return super().train(False)  # always a fixed feature extractor

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] in [-1, 1] -> VGG features."""
        x = ((x.float() + 1) / 2 - self.mean) / self.std
        return self.net(x)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.features(hr)
        return F.l1_loss(self.features(sr), target)
