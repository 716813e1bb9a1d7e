"""Composite pictures from a latent-sampling export: a class grid, a style-mixing grid, or an
interpolation loop, each written to one file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from trainer.export import load_generator
from trainer.images import save_grid
from trainer.sampling import latents

FEATURE_FLAGS = {"grid": "--grid", "style-mix": "--style-mix", "video": "--video"}


def write_composite(
    export: Path,
    seeds: list[int],
    out_dir: Path,
    *,
    kind: str,
    class_index: Optional[int] = None,
    truncation: float = 1.0,
    mix_seeds: Optional[list[int]] = None,
    mix_cutoff: int = 4,
    video: Optional[Path] = None,
    frames: int = 24,
    fps: int = 24,
) -> Path:
    """kind: "grid" (a row per class without class_index), "style-mix" (rows: seeds, columns:
    mix_seeds) or "video" (a loop through the seeds, written to `video`). Returns the file."""
    G, description = load_generator(export)  # small composites: CPU is enough
    require_feature(G, description, kind)  # refuse at once, before any work, in one line
    if not (kind == "grid" and class_index is None):  # a grid without --class shows every class
        latents.one_hot(class_index, G.c_dim, 1, class_names=description.get("class_names"))
    if kind == "video":
        if has_styles(G):
            images = latents.interpolation_frames(
                G, seeds, class_index=class_index, frames=frames, truncation=truncation
            )
        else:  # no W space (mlp, dcgan, ...): the same loop through Z
            images = latent_interpolation_frames(
                G, seeds, class_index=class_index, frames=frames, truncation=truncation
            )
        return latents.save_animation(images, video, fps=fps)
    if kind == "grid":
        images, rows = (
            latents.class_grid(G, seeds, truncation=truncation)
            if class_index is None
            else (latents.generate(G, seeds, class_index, truncation=truncation), 1)
        )
        path = out_dir / "grid.png"
    elif kind == "style-mix":
        images = latents.style_mixing_grid(
            G, seeds, mix_seeds, class_index=class_index, cutoff=mix_cutoff, truncation=truncation
        )
        rows, path = len(seeds) + 1, out_dir / "style-mixing.png"
    else:
        raise ValueError(f"unknown composite kind {kind!r}: grid, style-mix or video")
    save_grid(images, path, rows=rows)
    return path


def has_styles(G: torch.nn.Module) -> bool:
    """A mapping network to W and a synthesis network fed per-layer styles (stylegan2)."""
    return all(hasattr(G, name) for name in ("mapping", "synthesis", "num_ws"))


def require_feature(G: torch.nn.Module, description: dict, kind: str) -> None:
    """One line naming the family and the feature when a composite cannot apply to this export."""
    family, flag = description.get("family", "?"), FEATURE_FLAGS.get(kind, kind)
    if not G.z_dim:
        raise ValueError(
            f"sample {flag}: family {family} makes images from input images, not from latent seeds, "
            "so it has no seeds to lay out; use its own sample flags (see `hiresgan sample -h`)"
        )
    if kind == "style-mix" and not has_styles(G):
        raise ValueError(
            f"sample --style-mix: family {family} has no per-layer style inputs to mix (style mixing "
            "needs a stylegan2 export); use --grid or --video instead"
        )


@torch.no_grad()
def latent_interpolation_frames(
    G: torch.nn.Module, seeds: list[int], *, class_index: Optional[int], frames: int, truncation: float = 1.0
) -> torch.Tensor:
    """Linear interpolation in Z between consecutive seeds (and back to the first), for generators
    without a W space. [len(seeds) * frames, C, H, W] in [-1, 1]."""
    if len(seeds) < 2 or frames < 1:
        raise ValueError("--video needs at least two seeds and --frames >= 1")
    z = torch.cat([latents.latent(s, G.z_dim) for s in seeds + seeds[:1]])  # [S + 1, z_dim]
    t = torch.arange(frames, dtype=z.dtype) / frames
    path = torch.cat([z[i : i + 1].lerp(z[i + 1 : i + 2], t[:, None]) for i in range(len(seeds))])
    c = latents.one_hot(class_index, G.c_dim, len(path))
    return torch.cat(
        [
            G(zc, None if c is None else c[k : k + len(zc)], truncation_psi=truncation, noise_mode="const")
            for k, zc in zip(range(0, len(path), 16), path.split(16))
        ]
    )
