"""The embedded unpaired CycleGAN default: domain A = Canny edge maps of real digits, domain B =
real digits, both at 32x32 and made exactly as the paired edges2digits set makes them
(`trainer.data.edges2digits`: bicubic upscale, `canny(image / 255, sigma=1)`, white on black).

The even-indexed digits (the paired set's training half) are split by a fixed permutation into
two disjoint halves: one half gives domain A's edge maps, the other domain B's digits, so no image
ever appears beside its own edge map and the data is truly unpaired. The odd-indexed digits stay
held out for evaluation (`trainer.data.edges2digits.eval_pairs`).

`data.prepare=edges2digits_unpaired` writes domain A into `data.urls`' folder and domain B into
`data.urls_b`'s, each as `shard-*.tar` + `manifest.json` (unlabelled: CycleGAN takes no labels).
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

from trainer.data.digits import RESOLUTION, load_digit_arrays
from trainer.data.edges2digits import edge_maps, train_indices

SHARDS = 4
SPLIT_SEED = 0x0E2D


def domain_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint (domain A, domain B) halves of the even-indexed digits (indices into load_digits)."""
    even = train_indices(n)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(even))
    half = len(even) // 2
    return np.sort(even[order[:half]]), np.sort(even[order[half:]])


def _member(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)  # fixed metadata: the same digits always give byte-identical shards
    info.size, info.mtime, info.mode = len(payload), 0, 0o644
    tar.addfile(info, io.BytesIO(payload))


def _write_domain(out_dir: Path, images: np.ndarray, keys: np.ndarray, *, description: str) -> Path:
    """uint8 [N, H, W] images -> out_dir/shard-*.tar + manifest.json, via a folder renamed into place."""
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    entries = []
    for shard, chunk in enumerate(np.array_split(np.arange(len(images)), SHARDS)):
        path = tmp / f"shard-{shard:06d}.tar"
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in chunk:
                png = io.BytesIO()
                Image.fromarray(images[i], mode="L").save(png, format="PNG", compress_level=6)
                _member(tar, f"{int(keys[i]):08d}.png", png.getvalue())
        entries.append({"name": path.name, "samples": len(chunk), "bytes": path.stat().st_size,
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    manifest = {"dataset": f"sklearn-digits-{description}", "samples": int(len(images)), "resolution": RESOLUTION,
                "channels": 1, "format": "png", "num_classes": 0, "labelled": False,
                "split": "half of the even-indexed digits (the other half is the other domain; odd ones held out)",
                "shards": entries, "urls": f"shard-{{000000..{SHARDS - 1:06d}}}.tar"}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir / "manifest.json"


def write_unpaired_edges2digits(folder_a: Path, folder_b: Path) -> tuple[Path, Path]:
    """Write domain A (edge maps) and domain B (digits); return both manifests."""
    digits, _ = load_digit_arrays(RESOLUTION)
    a, b = domain_indices(len(digits))
    return (_write_domain(Path(folder_a), edge_maps(digits[a]), a, description="edges-domain-a"),
            _write_domain(Path(folder_b), digits[b], b, description="digits-domain-b"))


def _complete(folder: Path) -> bool:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return False
    return all((folder / entry["name"]).is_file() for entry in json.loads(manifest.read_text())["shards"])


def ensure_unpaired_edges2digits(folder_a: Path, folder_b: Path) -> None:
    """Write both domains unless complete sets are already there."""
    if not (_complete(Path(folder_a)) and _complete(Path(folder_b))):
        write_unpaired_edges2digits(folder_a, folder_b)
