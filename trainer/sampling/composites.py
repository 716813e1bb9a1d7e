"""Composite pictures from a latent-sampling export: a class grid, a style-mixing grid, or an
interpolation loop, each written to one file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from trainer.export import load_generator
from trainer.images import save_grid
from trainer.sampling import latents


def write_composite(export: Path, seeds: list[int], out_dir: Path, *, kind: str, class_index: Optional[int] = None,
                    truncation: float = 1.0, mix_seeds: Optional[list[int]] = None, mix_cutoff: int = 4,
                    video: Optional[Path] = None, frames: int = 24, fps: int = 24) -> Path:
    """kind: "grid" (a row per class without class_index), "style-mix" (rows: seeds, columns:
    mix_seeds) or "video" (a loop through the seeds, written to `video`). Returns the file."""
    G, description = load_generator(export)  # small composites: CPU is enough
    if not (kind == "grid" and class_index is None):  # a grid without --class shows every class
        latents.one_hot(class_index, G.c_dim, 1, class_names=description.get("class_names"))
    if kind == "video":
        images = latents.interpolation_frames(G, seeds, class_index=class_index, frames=frames, truncation=truncation)
        return latents.save_animation(images, video, fps=fps)
    if kind == "grid":
        images, rows = latents.class_grid(G, seeds, truncation=truncation) if class_index is None else (
            latents.generate(G, seeds, class_index, truncation=truncation), 1)
        path = out_dir / "grid.png"
    elif kind == "style-mix":
        images = latents.style_mixing_grid(G, seeds, mix_seeds, class_index=class_index, cutoff=mix_cutoff,
                                           truncation=truncation)
        rows, path = len(seeds) + 1, out_dir / "style-mixing.png"
    else:
        raise ValueError(f"unknown composite kind {kind!r}: grid, style-mix or video")
    save_grid(images, path, rows=rows)
    return path
