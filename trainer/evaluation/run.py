"""`hiresgan eval`: metrics of an exported generator against a shard set.

Fake images are drawn for seeds 0..num-1 (the same latents as `hiresgan sample`), with classes
drawn uniformly for conditional generators, quantized to uint8 exactly like saved PNGs, then
passed through the same feature network as the real images.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from trainer.config import FEATURE_METRICS
from trainer.evaluation import scores

# The feature metrics of the eval.metrics key (training evaluates those), plus CAS: it trains two
# classifiers, too slow to pause training for, so it runs in `hiresgan eval` and its --watch
# sidecar only. (eval.metrics=alignment has its own command on exports:
# `python -m trainer.evaluation.text_alignment EXPORT`.)
METRICS = FEATURE_METRICS + ("cas",)


def parse_metrics(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise ValueError(f"--metrics {text!r}: valid names are {', '.join(METRICS)} (comma-separated)")
    return names


@torch.no_grad()
def fake_features(
    G: torch.nn.Module,
    extractor,
    *,
    num: int,
    truncation: float = 1.0,
    batch: int = 64,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> dict[str, np.ndarray]:
    """Features of generated images rank, rank + world_size, ... of 0..num-1: image i has the
    same latent and class however many ranks share the work."""
    from trainer.sampling.latents import latent

    classes = np.random.default_rng(seed).integers(0, max(G.c_dim, 1), num)
    device = next(G.parameters()).device
    mine = list(range(rank, num, world_size))
    features, probabilities = [], []
    for start in range(0, len(mine), batch):
        idx = mine[start : start + batch]
        z = torch.cat([latent(seed * 1_000_003 + i, G.z_dim) for i in idx]).to(device)
        c = torch.nn.functional.one_hot(torch.from_numpy(classes[idx]), G.c_dim).float().to(device) if G.c_dim else None
        images = G(z, c, truncation_psi=truncation, noise_mode="const")
        # As trainer.images.to_uint8; the feature networks run on the CPU (a training G may not).
        pixels = (images * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu()
        f, p = extractor(pixels)
        features.append(f)
        probabilities.append(p)
    empty = np.zeros((0, 0))
    return {
        "features": np.concatenate(features) if features else empty,
        "probabilities": np.concatenate(probabilities) if probabilities else empty,
    }


def gather_rows(local: dict[str, np.ndarray], total: int, world_size: int) -> dict[str, np.ndarray]:
    """Reassemble rows split round-robin over ranks (row i on rank i % world_size), on every rank."""
    if world_size == 1:
        return local
    from trainer import distributed

    out = {}
    per = -(-total // world_size)
    for key, rows in local.items():
        # Every rank sends the same shape (all_gather's rule): pad to the largest share.
        width = int(distributed.broadcast_object(rows.shape[1] if rows.size else 0, src=0))
        padded = torch.zeros(per, width, dtype=torch.float64)
        if rows.size:
            padded[: len(rows)] = torch.from_numpy(rows)
        # NCCL (a GPU training job's group) gathers device tensors only; gloo takes CPU ones.
        parts = distributed.all_gather_tensor(padded.to(distributed.collective_device()))
        full = np.empty((total, width))
        for r, part in enumerate(parts):
            full[r::world_size] = part[: len(range(r, total, world_size))].cpu().numpy()
        out[key] = full
    return out


def compute(real: dict, fake: dict, names: list[str], *, kid_subset: int = 1000, pr_k: int = 3) -> dict:
    out: dict = {}
    if "fid" in names:
        out["fid"] = scores.fid(real["features"], fake["features"])
    if "kid" in names:
        out["kid"], out["kid_std"] = scores.kid(real["features"], fake["features"], subset_size=kid_subset)
    if "pr" in names:
        out["precision"], out["recall"] = scores.precision_recall(real["features"], fake["features"], k=pr_k)
    if "is" in names:
        out["is"], out["is_std"] = scores.inception_score(
            fake["probabilities"], splits=min(10, len(fake["probabilities"]))
        )
    return out


def load_real(
    data: str,
    extractor,
    *,
    num: int,
    resolution: int,
    channels: int,
    cache_dir: Optional[Path] = None,
    batch: int = 64,
    rank: int = 0,
    world_size: int = 1,
) -> Optional[dict]:
    """Real features on rank 0 (None on the others), from the cache or extracted by all ranks in
    parallel. Collective when world_size > 1: every rank must call it."""
    from trainer import distributed
    from trainer.evaluation import stats

    shape = dict(num=num, resolution=resolution, channels=channels)
    cache = stats.cache_path(data, extractor, cache_dir=cache_dir, **shape)
    hit = cache is not None and cache.is_file()
    if world_size > 1:
        hit = bool(distributed.broadcast_object(hit))  # rank 0's view decides, for every rank alike
    if hit:
        return stats.load_file(str(cache)) if rank == 0 else None
    local, total = stats.extract_real(data, extractor, batch=batch, rank=rank, world_size=world_size, **shape)
    real = gather_rows(local, total, world_size)
    if rank != 0:
        return None
    if cache is not None:
        stats.save_cache(cache, real, pattern=data, network=extractor.name)
    return real


def evaluate_generator(
    G: torch.nn.Module,
    extractor,
    real: Optional[dict],
    *,
    names: list[str],
    num_fake: int,
    data: str = "",
    truncation: float = 1.0,
    batch: int = 64,
    rank: int = 0,
    world_size: int = 1,
) -> Optional[dict]:
    """Metrics of G against `real` (rank 0's features from `load_real`): every rank renders its
    share of the fakes, rank 0 computes and returns the report (others: None). Collective when
    world_size > 1, but it neither joins nor leaves a process group: the caller owns it (the CLI
    under torchrun, or the training process)."""
    started = time.perf_counter()
    fake = gather_rows(
        fake_features(G, extractor, num=num_fake, truncation=truncation, batch=batch, rank=rank, world_size=world_size),
        num_fake,
        world_size,
    )
    if rank != 0:
        return None
    report = {
        "data": data,
        "features": extractor.name,
        "feature_network_sha256": extractor.fingerprint,
        "num_real": len(real["features"]),
        "num_fake": num_fake,
        "truncation": truncation,
        "ranks": world_size,
        "comparable_to_published": extractor.name == "inception",
    }
    report.update(compute(real, fake, names, kid_subset=min(1000, num_fake)))
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


def evaluate(
    export: Path,
    data: str,
    *,
    names: list[str],
    num_fake: int = 1000,
    num_real: int = 1797,
    features: str = "digits",
    inception_weights: Optional[Path] = None,
    inception_sha256: Optional[str] = None,
    truncation: float = 1.0,
    cache_dir: Optional[Path] = None,
    batch: int = 64,
    extractor=None,
    cas_per_class: int = 100,
    cas_seed: int = 0,
    cas_prompts: Optional[list[str]] = None,
    cas_ceiling_data: Optional[str] = None,
) -> Optional[dict]:
    """Metrics of the generator in `export` against the shards `data` (see the module docstring).
    "cas" (trainer/evaluation/cas.py) runs on rank 0 with `cas_per_class` images per class (a text
    export's classes: `cas_prompts`; the ceiling's real images from `cas_ceiling_data` when given).

    Under torchrun (WORLD_SIZE > 1) this joins the process group, every rank extracts its share of
    the real and generated features, rank 0 gathers them, computes the metrics and returns the
    report (others: None), and the group is left again.
    """
    from trainer import distributed
    from trainer.evaluation.features import build_extractor
    from trainer.export import load_generator

    started = time.perf_counter()
    feature_names = [n for n in names if n != "cas"]
    G, description = load_generator(export)
    if "cas" in names:  # before any slow work: an export CAS cannot judge fails at once
        from trainer.evaluation.cas import check_cas

        check_cas(G, description, per_class=cas_per_class, export=f"'{export}'", prompts=cas_prompts)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = distributed.init_distributed().rank if world > 1 else 0
    if rank == 0 and feature_names:
        from trainer.evaluation.stats import shape_warning

        warning = shape_warning(data, resolution=G.img_resolution, channels=G.img_channels)
        if warning:
            print(f"hiresgan: warning: {warning}", file=sys.stderr)
    report: Optional[dict] = {"data": data, "truncation": truncation, "ranks": world} if rank == 0 else None
    if feature_names:
        if extractor is None:
            extractor = build_extractor(features, weights=inception_weights, sha256=inception_sha256)
        extractor.check_images(G.img_channels, G.img_resolution, f"the generator in '{export}'")
        real = load_real(
            data,
            extractor,
            num=num_real,
            resolution=G.img_resolution,
            channels=G.img_channels,
            cache_dir=cache_dir,
            batch=batch,
            rank=rank,
            world_size=world,
        )
        report = evaluate_generator(
            G,
            extractor,
            real,
            names=feature_names,
            num_fake=num_fake,
            data=data,
            truncation=truncation,
            batch=batch,
            rank=rank,
            world_size=world,
        )
    if world > 1:
        distributed.shutdown()
    if report is None:
        return None
    if "cas" in names:
        from trainer.evaluation.cas import cas

        report.update(
            cas(
                G,
                description,
                data,
                per_class=cas_per_class,
                seed=cas_seed,
                truncation=truncation,
                export=f"'{export}'",
                prompts=cas_prompts,
                ceiling_data=cas_ceiling_data,
            )
        )
    report = {"export": str(export), **report, "seconds": round(time.perf_counter() - started, 2)}
    return report


def write_report(report: dict, out: Optional[Path]) -> str:
    """The report as indented JSON, also written to `out` when given; returns the text."""
    text = json.dumps(report, indent=2)
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return text
