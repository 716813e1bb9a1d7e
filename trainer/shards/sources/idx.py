"""MNIST / Fashion-MNIST IDX files (plain or gzipped), parsed with numpy.

IDX layout: two zero bytes, a type byte (0x08 = unsigned byte, the only one images use), a byte
with the number of dimensions, one big-endian uint32 per dimension, then the data in C order.
"""

from __future__ import annotations

import gzip
import os
import re

import numpy as np

from .base import Payload, Scan, file_stamp
from .probe import array_items, check_labels, to_hwc

IDX_NAME = re.compile(r"idx[1-4]-ubyte(\.gz)?$")
IMAGES_NAME = re.compile(r"images[-.]idx3-ubyte(\.gz)?$")


def read_idx(path: str) -> np.ndarray:
    """The array stored in one IDX file; ValueError naming the file if it is malformed."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise ValueError(f"{path}: IDX type 0x{data[2]:02x} is not unsigned bytes (0x08)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({expected} bytes) but the file holds "
            f"{len(data) - header} data bytes; the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def find_images_file(path: str) -> str:
    """SRC may be the images file itself or a folder holding exactly one images file."""
    if os.path.isfile(path):
        return path
    found = sorted(n for n in os.listdir(path) if IMAGES_NAME.search(n))
    if len(found) != 1:
        raise ValueError(
            f"{path}: expected exactly one '*-images-idx3-ubyte[.gz]' file, found "
            f"{found or 'none'}; pass the images file itself as SRC (e.g. {path}/"
            f"{found[0] if found else 'train-images-idx3-ubyte.gz'})"
        )
    return os.path.join(path, found[0])


def labels_file_for(images_file: str) -> str | None:
    """The matching labels file (images-idx3 -> labels-idx1, gzipped or not), if present."""
    d, name = os.path.split(images_file)
    stem = IMAGES_NAME.sub("", name)
    sep = name[len(stem) + len("images")]
    for cand in (f"{stem}labels{sep}idx1-ubyte", f"{stem}labels{sep}idx1-ubyte.gz"):
        if os.path.isfile(os.path.join(d, cand)):
            return os.path.join(d, cand)
    return None


class IdxSource:
    def __init__(self, path: str):
        self.path = path
        self._images: np.ndarray | None = None

    def scan(self) -> Scan:
        images_file = find_images_file(self.path)
        images = read_idx(images_file)
        if images.ndim != 3:
            raise ValueError(f"{images_file}: expected 3 dimensions (N,H,W), got {images.shape}")
        labels_file = labels_file_for(images_file)
        labels = None
        stamp = [file_stamp(images_file)]
        if labels_file is not None:
            labels = check_labels(read_idx(labels_file), images.shape[0], labels_file)
            stamp.append(file_stamp(labels_file))
        self._images = images
        name = os.path.basename(images_file)
        items = array_items(images, "NHW", labels, lambda i: {"path": name, "index": i})
        return Scan(items=items, unreadable=[], kind="idx", has_labels=labels is not None, stamp=stamp)

    def payload(self, index: int) -> Payload:
        assert self._images is not None, "scan() first"
        return to_hwc(self._images, "NHW", index)

    def close(self) -> None:
        self._images = None
