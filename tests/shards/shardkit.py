"""Tiny synthetic datasets and a stock-webdataset reader for the shard tests."""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import json
import os
import struct

import numpy as np
from PIL import Image


def make_folder(root, classes=("cat", "dog"), per_class=3, size=(12, 10), seed=0, mode="RGB"):
    """root/<class>/<i>.png random images; returns {relpath: array}."""
    rng = np.random.default_rng(seed)
    out = {}
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            arr = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(arr).save(os.path.join(root, c, f"{i}.png"))
            out[f"{c}/{i}.png"] = arr
    return out


def write_idx(path, arr: np.ndarray, gz: bool):
    data = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data += arr.astype(np.uint8).tobytes()
    if gz:
        # mtime=0 keeps the test's gzip bytes stable too
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def shard_bytes(out_dir) -> dict[str, bytes]:
    return {os.path.basename(p): open(p, "rb").read() for p in sorted(glob.glob(os.path.join(out_dir, "shard-*.tar")))}


def read_back(out_dir, decode=None):
    """[(key, image, cls or None, json)] via the stock webdataset pipeline.

    decode=None opens the image bytes with PIL as stored (webdataset's "pil" would force RGB);
    otherwise it is a webdataset decoder spec such as "rgb8".
    """
    import webdataset as wds

    from trainer.shards import read_manifest

    m = read_manifest(out_dir)
    url = os.path.join(out_dir, m.urls)
    ds = wds.WebDataset(url, shardshuffle=False, empty_check=False)
    if decode is not None:
        ds = ds.decode(decode)
        return [(s["__key__"], s[m.format], s.get("cls"), s.get("json")) for s in ds]
    out = []
    for s in ds:
        cls = int(s["cls"]) if "cls" in s else None
        out.append((s["__key__"], Image.open(io.BytesIO(s[m.format])), cls, json.loads(s["json"])))
    return out


def digest(img) -> str:
    return hashlib.sha256(np.asarray(img).tobytes()).hexdigest()


def resized(arr, res, crop=True):
    """What the writer should produce from an array: centre crop + Lanczos resize."""
    img = Image.fromarray(arr)
    w, h = img.size
    if crop and w != h:
        s = min(w, h)
        l, t = (w - s) // 2, (h - s) // 2
        img = img.crop((l, t, l + s, t + s))
    if img.size != (res, res):
        img = img.resize((res, res), Image.LANCZOS)
    return np.asarray(img)


def png_bytes(arr) -> bytes:
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "PNG")
    return b.getvalue()
