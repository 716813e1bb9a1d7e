"""Features of real images from WebDataset shards, cached per (dataset, network, count, size).

The real side of every metric is the same for every checkpoint of a run, so its features are
computed once and stored as safetensors under a key made of the shards' content hash, the
feature network's weights hash, the image count and the decode size. Reading order is the
shard list order (no shuffling), so the first `num` images are the same on every machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from webdataset.tariterators import group_by_keys, tar_file_expander, url_opener

from trainer.data import decode_image, expand_urls


def shard_files(pattern: str) -> list[Path]:
    urls = expand_urls(pattern)
    if not urls:
        raise ValueError(f"--data '{pattern}' names no shards")
    missing = [u for u in urls if not Path(u).is_file()]
    if missing:
        raise FileNotFoundError(f"--data: shard '{missing[0]}' does not exist ({len(missing)} of {len(urls)} "
                                "missing); pass a local brace pattern like data/digits/shard-{000000..000007}.tar")
    return [Path(u) for u in urls]


def dataset_fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def iter_real_batches(files: list[Path], *, num: int, resolution: int, channels: int,
                      batch: int) -> Iterator[torch.Tensor]:
    """uint8 [B, C, H, W] batches of the first `num` images, in shard order."""
    def fail(exc: Exception) -> bool:
        raise ValueError(f"--data: cannot read shard data: {exc}") from exc

    samples = group_by_keys(tar_file_expander(url_opener(({"url": str(f)} for f in files), handler=fail),
                                              handler=fail), handler=fail)
    pending: list[np.ndarray] = []
    seen = 0
    for sample in samples:
        pending.append(decode_image(sample, resolution, channels))
        seen += 1
        if len(pending) == batch or seen == num:
            yield torch.from_numpy(np.stack(pending))
            pending = []
        if seen == num:
            return
    if pending:
        yield torch.from_numpy(np.stack(pending))


def real_features(pattern: str, extractor, *, num: int, resolution: int, channels: int, batch: int = 64,
                  cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """{'features': [N, D], 'probabilities': [N, K]} of up to `num` real images (cached)."""
    files = shard_files(pattern)
    key = hashlib.sha256(json.dumps([dataset_fingerprint(files), extractor.fingerprint, num, resolution,
                                     channels]).encode()).hexdigest()[:24]
    cache = Path(cache_dir) / f"real-{extractor.name}-{key}.safetensors" if cache_dir else None
    if cache is not None and cache.is_file():
        return load_file(str(cache))
    features, probabilities = [], []
    for images in iter_real_batches(files, num=num, resolution=resolution, channels=channels, batch=batch):
        f, p = extractor(images)
        features.append(f)
        probabilities.append(p)
    if not features:
        raise ValueError(f"--data '{pattern}' holds no images")
    out = {"features": np.concatenate(features), "probabilities": np.concatenate(probabilities)}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp")
        save_file(out, str(tmp), metadata={"data": pattern, "network": extractor.name})
        os.replace(tmp, cache)  # a concurrent or interrupted writer never leaves half a file
    return out
