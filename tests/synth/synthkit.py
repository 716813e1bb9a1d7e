"""Helpers for the synth tests: tiny exports, and a stand-in generator that draws real digits."""

from pathlib import Path

import numpy as np
import torch


def write_export(out: Path, *, c_dim: int, seed: int = 0) -> Path:
    from trainer.export import export_generator
    from trainer.models.mlp import MLPGenerator

    torch.manual_seed(seed)
    G = MLPGenerator(z_dim=8, c_dim=c_dim, img_resolution=32, img_channels=1, hidden=16, layers=1).eval()
    export_generator(G, out, class_names=[str(k) for k in range(c_dim)] if c_dim else None)
    return out


class DigitTable(torch.nn.Module):
    """A 'generator' that returns a real digit of the requested class, picked by z: what a perfect
    conditional generator would draw. With `ignore_class` it draws any digit (class leakage)."""

    family = "digit-table"

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, ignore_class: bool = False):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 4, 10, 32, 1
        self.images = torch.from_numpy(images).float() / 127.5 - 1  # [N, 32, 32]
        self.labels, self.ignore_class = torch.from_numpy(labels), ignore_class
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # so next(G.parameters()) has a device

    def forward(self, z, c, *, truncation_psi=1.0, noise_mode="const"):
        out = []
        for zi, ci in zip(z, c):
            pool = torch.arange(len(self.labels)) if self.ignore_class else (self.labels == ci.argmax()).nonzero()[:, 0]
            pick = pool[int(abs(zi[0].item()) * 1e6) % len(pool)]
            out.append(self.images[pick])
        return torch.stack(out)[:, None]


def write_text_export(
    out: Path, seed: int = 0, vocab: tuple = ("a", "red", "blue", "three", "seven"), context: int = 6
) -> Path:
    """A tiny text-to-image export with a builtin word tokenizer."""
    from trainer.export import export_generator
    from trainer.models.text2img import TextGenerator

    tokenizer = {"kind": "hiresgan-words", "vocab": list(vocab), "context": context}
    torch.manual_seed(seed)
    G = TextGenerator(
        z_dim=8,
        w_dim=8,
        img_resolution=16,
        img_channels=3,
        tokenizer=tokenizer,
        context=context,
        text_dim=8,
        text_layers=1,
        text_heads=2,
        attn_res=8,
        attn_heads=1,
        mapping_layers=1,
        channel_base=64,
        channel_max=8,
    ).eval()
    export_generator(G, out, metadata={"text_encoder": "builtin", "context": context, "tokenizer": tokenizer})
    return out
