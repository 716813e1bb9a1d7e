"""The embedded default dataset: scikit-learn's bundled handwritten digits, as WebDataset shards.

1,797 grayscale 8x8 images in 10 classes ship inside scikit-learn (no download). We upscale
them to 32x32 and write them once to tar shards with labels; training then streams those
shards through the same loader as any user dataset.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

SHARDS = 8
RESOLUTION = 32
CLASS_NAMES = [str(d) for d in range(10)]


def load_digit_arrays(resolution: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """All digits as uint8 [N, resolution, resolution] (white ink on black) and int64 labels."""
    from sklearn.datasets import load_digits  # the data ships inside the package

    bunch = load_digits()
    small = np.clip(bunch.images * (255.0 / 16.0), 0, 255).astype(np.uint8)  # 0..16 -> 0..255
    # Bicubic upscaling turns the 8x8 blocks into smooth strokes rather than big squares.
    big = np.stack([
        np.asarray(Image.fromarray(im, mode="L").resize((resolution, resolution), Image.BICUBIC))
        for im in small
    ])
    return big, bunch.target.astype(np.int64)


def _add_member(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    # Fixed metadata so the same digits always give byte-identical shards.
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(payload))


def _png_bytes(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image, mode="L").save(out, format="PNG", compress_level=6)
    return out.getvalue()


def shard_paths(out_dir: Path, shards: int = SHARDS) -> list[Path]:
    return [out_dir / f"shard-{i:06d}.tar" for i in range(shards)]


def write_digit_shards(out_dir: Path, *, shards: int = SHARDS, resolution: int = RESOLUTION) -> Path:
    """Write the digits to `out_dir`/shard-*.tar plus manifest.json; return the manifest path.

    The shards are written into a temporary sibling folder that is renamed into place at the
    end, so an interrupted run never leaves shards that look complete.
    """
    out_dir = Path(out_dir)
    images, labels = load_digit_arrays(resolution)
    # A fixed permutation spreads every class over every shard.
    order = np.random.default_rng(0).permutation(len(images))
    tmp_dir = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    entries = []
    for shard_index, chunk in enumerate(np.array_split(order, shards)):
        path = shard_paths(tmp_dir, shards)[shard_index]
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in chunk:
                key = f"{int(i):08d}"
                _add_member(tar, f"{key}.png", _png_bytes(images[i]))
                _add_member(tar, f"{key}.cls", str(int(labels[i])).encode())
        entries.append({"name": path.name, "samples": len(chunk),
                        "bytes": path.stat().st_size,
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    manifest = {
        "dataset": "sklearn-digits", "samples": int(len(images)), "resolution": resolution,
        "channels": 1, "format": "png", "num_classes": 10, "class_names": CLASS_NAMES,
        "shards": entries, "urls": f"shard-{{000000..{shards - 1:06d}}}.tar",
    }
    (tmp_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp_dir, out_dir)
    return out_dir / "manifest.json"


def ensure_digit_shards(out_dir: Path) -> Path:
    """Write the digit shards unless a complete set is already there; return the manifest path."""
    manifest = Path(out_dir) / "manifest.json"
    if manifest.is_file():
        names = [entry["name"] for entry in json.loads(manifest.read_text())["shards"]]
        if all((Path(out_dir) / name).is_file() for name in names):
            return manifest
    return write_digit_shards(Path(out_dir))
