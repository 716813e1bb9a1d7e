"""The embedded pix2pix default: Canny edge maps -> scikit-learn's real digits, at 32x32.

The digit is the digits default's 32x32 image (`trainer.data.digits.load_digit_arrays`, bicubic
upscale of the 8x8 original); its edge map is `skimage.feature.canny(image / 255, sigma=1)`,
white on black, stored as an 8-bit PNG. Training shards (`data.prepare=edges2digits`) hold the
even-indexed digits only (index = position in `sklearn.datasets.load_digits()`), as paired samples
`<index>.a.png` (edges), `<index>.b.png` (digit), `<index>.cls` (label); the odd-indexed ones are
kept for evaluation (`eval_pairs`) and never written to the training shards.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from trainer.data.digits import CLASS_NAMES, RESOLUTION, load_digit_arrays
from trainer.data.paired import canny_edges
from trainer.shards.manifest import SHARD_PATTERN, brace_pattern
from trainer.shards.tarshard import ShardTar

SHARDS = 4
SIGMA = 1.0


def train_indices(n: int) -> np.ndarray:
    return np.arange(0, n, 2)  # even-indexed: training


def eval_indices(n: int) -> np.ndarray:
    return np.arange(1, n, 2)  # odd-indexed: evaluation only


def edge_maps(digits: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W] digits -> uint8 [N, H, W] Canny edge maps (255 on edges)."""
    return np.stack([canny_edges(d, SIGMA) for d in digits])


def eval_pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edges, digits, labels) of the odd-indexed digits: what quality gates translate and read."""
    digits, labels = load_digit_arrays(RESOLUTION)
    idx = eval_indices(len(digits))
    return edge_maps(digits[idx]), digits[idx], labels[idx]


def _png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image, "L").save(out, format="PNG", compress_level=6)
    return out.getvalue()


def write_edges2digits_shards(out_dir: Path, *, shards: int = SHARDS) -> Path:
    """Write the even-indexed pairs to out_dir/shard-*.tar + manifest.json (via a temp folder
    renamed into place, so an interrupted write never looks complete); return the manifest."""
    out_dir = Path(out_dir)
    digits, labels = load_digit_arrays(RESOLUTION)
    idx = train_indices(len(digits))
    edges = edge_maps(digits[idx])
    order = np.random.default_rng(0).permutation(len(idx))  # every class in every shard
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    entries = []
    for s, chunk in enumerate(np.array_split(order, shards)):
        tar = ShardTar(str(tmp / SHARD_PATTERN.format(s)))
        for j in chunk:
            tar.add(f"{int(idx[j]):08d}", {"a.png": _png(edges[j]), "b.png": _png(digits[idx[j]]),
                                           "cls": str(int(labels[idx[j]])).encode()})
        size, sha = tar.commit()
        entries.append({"name": SHARD_PATTERN.format(s), "samples": len(chunk), "bytes": size, "sha256": sha})
    manifest = {"dataset": "sklearn-digits-edges2digits", "samples": int(len(idx)), "resolution": RESOLUTION,
                "channels": 1, "input_channels": 1, "paired": True, "format": "png", "num_classes": 10,
                "class_names": CLASS_NAMES, "split": "even-indexed digits (odd-indexed are held out)",
                "canny_sigma": SIGMA, "shards": entries, "urls": brace_pattern(shards)}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir / "manifest.json"


def ensure_edges2digits_shards(out_dir: Path) -> Path:
    """Write the shards unless a complete set is already there; return the manifest path."""
    manifest = Path(out_dir) / "manifest.json"
    if manifest.is_file():
        names = [entry["name"] for entry in json.loads(manifest.read_text())["shards"]]
        if all((Path(out_dir) / name).is_file() for name in names):
            return manifest
    return write_edges2digits_shards(Path(out_dir))
