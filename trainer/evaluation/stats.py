"""Features of real images from WebDataset shards, cached per (dataset, network, count, size).

The real side of every metric is the same for every checkpoint of a run, so its features are
computed once and stored as safetensors under a key made of the shards' content hash, the
feature network's weights hash, the image count and the decode size. Reading order is the
shard list order (no shuffling), so the first `num` images are the same on every machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from safetensors.numpy import load_file
from webdataset.tariterators import group_by_keys, tar_file_expander, url_opener

from trainer.data.sources import DataError, expand_urls, find_manifest, is_remote, resolve_urls
from trainer.data.stream import decode_image
from trainer.files import save_numpy_safetensors


def shard_files(pattern: str) -> list[Path]:
    """The local shards `pattern` names: whatever data.urls takes (brace patterns, shard folders,
    manifest.json files, several items), read from this machine."""
    if not expand_urls(pattern):
        raise ValueError(f"--data '{pattern}' names no shards")
    try:
        urls = resolve_urls(pattern)
    except DataError as exc:
        raise FileNotFoundError(
            f"--data: {exc} (the path does not exist or holds no shards); pass what data.urls "
            "takes: a shard folder, its manifest.json or a pattern like "
            "data/digits/shard-{000000..000007}.tar"
        ) from None
    remote = [u for u in urls if is_remote(u)]
    if remote:
        raise ValueError(
            f"--data: '{remote[0]}' is remote; evaluation reads shards on this machine (its features "
            "are cached by file): copy them here first"
        )
    return [Path(u) for u in urls]


def shape_warning(pattern: str, *, resolution: int, channels: int) -> str:
    """'' when the shards' manifest (if any) matches the generator's images, else what differs."""
    try:
        manifest = find_manifest(pattern)
    except (DataError, OSError, ValueError):
        return ""
    if manifest and manifest.get("args", {}).get("crop") == "full":
        return ""  # whole images of many sizes: nothing single to compare
    have = (manifest.get("resolution"), manifest.get("channels")) if manifest else _first_image_shape(pattern)
    if have == (resolution, channels) or None in have:
        return ""
    return (
        f"--data holds {have[0]}x{have[0]} images with {have[1]} channel(s) but the generator makes "
        f"{resolution}x{resolution} with {channels}; real images are resized and converted to the "
        "generator's, so the scores compare unlike data: check that --data is the set it was trained on"
    )


def _first_image_shape(pattern: str) -> tuple:
    """(side, channels) of the first image of the first shard, for shards without a manifest;
    (None, None) when it cannot be read (the metrics then report the problem themselves)."""
    from PIL import Image

    from trainer.data.stream import IMAGE_EXTENSIONS

    try:
        for sample in group_by_keys(tar_file_expander(url_opener([{"url": str(shard_files(pattern)[0])}]))):
            ext = next((e for e in IMAGE_EXTENSIONS if e in sample), None)
            if ext is None:
                continue
            with Image.open(io.BytesIO(sample[ext])) as img:
                width, height = img.size
                return (width if width == height else None), (1 if img.mode in ("1", "L", "I", "I;16") else 3)
    except Exception:  # noqa: BLE001 - a best-effort warning must never be the error
        pass
    return None, None


def dataset_fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def iter_real_batches(
    files: list[Path],
    *,
    num: int,
    resolution: int,
    channels: int,
    batch: int,
    rank: int = 0,
    world_size: int = 1,
    seen: Optional[list[int]] = None,
) -> Iterator[torch.Tensor]:
    """uint8 [B, C, H, W] batches of this rank's share (every world_size-th, from `rank`) of the
    first `num` images in shard order. Other ranks' samples are skipped before decoding.
    `seen`, if given, receives the number of images that exist among the first `num`."""

    def fail(exc: Exception) -> bool:
        raise ValueError(f"--data: cannot read shard data: {exc}") from exc

    samples = group_by_keys(
        tar_file_expander(url_opener(({"url": str(f)} for f in files), handler=fail), handler=fail), handler=fail
    )
    pending: list[np.ndarray] = []
    count = 0
    for sample in samples:
        if count == num:
            break
        if count % world_size == rank:
            pending.append(decode_image(sample, resolution, channels))
        count += 1
        if len(pending) == batch:
            yield torch.from_numpy(np.stack(pending))
            pending = []
    if seen is not None:
        seen.append(count)
    if pending:
        yield torch.from_numpy(np.stack(pending))


def cache_path(
    pattern: str, extractor, *, num: int, resolution: int, channels: int, cache_dir: Optional[Path]
) -> Optional[Path]:
    if cache_dir is None:
        return None
    key = hashlib.sha256(
        json.dumps(
            [dataset_fingerprint(shard_files(pattern)), extractor.fingerprint, num, resolution, channels]
        ).encode()
    ).hexdigest()[:24]
    return Path(cache_dir) / f"real-{extractor.name}-{key}.safetensors"


def extract_real(
    pattern: str,
    extractor,
    *,
    num: int,
    resolution: int,
    channels: int,
    batch: int = 64,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[dict[str, np.ndarray], int]:
    """This rank's share of the real features, and how many real images there are in all."""
    features, probabilities, seen = [], [], []
    for images in iter_real_batches(
        shard_files(pattern),
        num=num,
        resolution=resolution,
        channels=channels,
        batch=batch,
        rank=rank,
        world_size=world_size,
        seen=seen,
    ):
        f, p = extractor(images)
        features.append(f)
        probabilities.append(p)
    if not seen or seen[0] < 2:
        raise ValueError(f"--data '{pattern}' holds {seen[0] if seen else 0} images; the metrics need at least 2")
    empty = np.zeros((0, 0))
    return (
        {
            "features": np.concatenate(features) if features else empty,
            "probabilities": np.concatenate(probabilities) if probabilities else empty,
        },
        seen[0],
    )


def save_cache(path: Path, arrays: dict[str, np.ndarray], *, pattern: str, network: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_numpy_safetensors(arrays, tmp, metadata={"data": pattern, "network": network})
    os.replace(tmp, path)  # a concurrent or interrupted writer never leaves half a file


def real_features(
    pattern: str, extractor, *, num: int, resolution: int, channels: int, batch: int = 64, cache_dir: Path | None = None
) -> dict[str, np.ndarray]:
    """{'features': [N, D], 'probabilities': [N, K]} of up to `num` real images (one process, cached)."""
    cache = cache_path(pattern, extractor, num=num, resolution=resolution, channels=channels, cache_dir=cache_dir)
    if cache is not None and cache.is_file():
        return load_file(str(cache))
    out, _ = extract_real(pattern, extractor, num=num, resolution=resolution, channels=channels, batch=batch)
    if cache is not None:
        save_cache(cache, out, pattern=pattern, network=extractor.name)
    return out
