"""Pickle-free generator exports: safetensors weights plus a JSON that is enough to rebuild it.

`<run>/export/generator.safetensors` holds G_ema's parameters and buffers (the metadata repeats
the family and format version), `<run>/export/generator.json` the family, constructor arguments
and what a sampler needs to know (latent size, classes, resolution).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from trainer.models import build_generator

FORMAT = "hiresgan-generator"
FORMAT_VERSION = 1
WEIGHTS = "generator.safetensors"
DESCRIPTION = "generator.json"


class ExportError(ValueError):
    pass


def export_generator(G_ema: torch.nn.Module, out_dir: Path, *, class_names: Optional[list[str]] = None,
                     training: Optional[dict[str, Any]] = None) -> Path:
    """Write G_ema to out_dir; returns the weights file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    description = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "family": G_ema.family,
        "init_kwargs": G_ema.init_kwargs, "z_dim": G_ema.z_dim, "c_dim": G_ema.c_dim,
        "img_resolution": G_ema.img_resolution, "img_channels": G_ema.img_channels,
        "class_names": class_names, "pixel_range": [-1, 1], "training": training or {},
    }
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in G_ema.state_dict().items()}
    weights, meta = out_dir / WEIGHTS, out_dir / DESCRIPTION
    tmp_weights, tmp_meta = out_dir / f".{WEIGHTS}.tmp", out_dir / f".{DESCRIPTION}.tmp"
    save_file(tensors, str(tmp_weights), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION),
                                                   "family": G_ema.family})
    tmp_meta.write_text(json.dumps(description, indent=2))
    os.replace(tmp_weights, weights)
    os.replace(tmp_meta, meta)
    return weights


def resolve_export(path: Path) -> tuple[Path, Path]:
    """Accept an export folder, its safetensors file or its JSON; return (weights, json)."""
    path = Path(path)
    if path.is_dir():
        folder = path / "export" if (path / "export" / DESCRIPTION).is_file() else path  # a run dir works too
        weights, meta = folder / WEIGHTS, folder / DESCRIPTION
    elif path.suffix == ".safetensors":
        weights, meta = path, path.with_suffix(".json")
    elif path.suffix == ".json":
        weights, meta = path.with_suffix(".safetensors"), path
    else:
        raise ExportError(f"'{path}' is not an export: pass its folder, its .safetensors or its .json")
    for p in (weights, meta):
        if not p.is_file():
            raise ExportError(f"export file '{p}' does not exist")
    return weights, meta


def load_generator(path: Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild an exported generator (eval mode, no gradients) and return it with its description."""
    weights, meta = resolve_export(path)
    try:
        description = json.loads(meta.read_text())
    except ValueError as exc:
        raise ExportError(f"'{meta}' is not valid JSON: {exc}") from None
    if description.get("format") != FORMAT:
        raise ExportError(f"'{meta}' is not a hiresgan generator description (format={description.get('format')!r})")
    if description.get("format_version", 0) > FORMAT_VERSION:
        raise ExportError(f"'{meta}' has format_version {description['format_version']}; this hiresgan reads "
                          f"up to {FORMAT_VERSION}: upgrade hiresgan")
    G = build_generator(description["family"], description["init_kwargs"])
    with safe_open(str(weights), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    expected = G.state_dict()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ExportError(f"'{weights}' does not match '{meta}': missing {missing[:5]}, unexpected "
                          f"{unexpected[:5]}, wrong shapes {wrong[:5]}")
    G.load_state_dict(tensors)
    return G.eval().requires_grad_(False).to(device), description
