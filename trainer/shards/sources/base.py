"""What every source hands the writer: a sorted list of Items and a way to fetch their pixels.

Sources are scanned up front (headers only for image files) so that bad input is reported before
any shard is written. The pixels are fetched later, item by item, as picklable payloads that a
worker process decodes: a file path (str), the encoded bytes (bytes), or an HxW / HxWxC uint8
array.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol, Union

import numpy as np

Payload = Union[str, bytes, np.ndarray]

# File name extensions read as images (lower-cased before comparing): every format Pillow can open
# (.tif, .gif, .ppm, .jp2, ...), minus formats it can only identify (PostScript needs Ghostscript;
# BUFR, GRIB, HDF5 and Windows metafiles need handlers it does not ship; MPEG is video) and .pdf,
# which it only writes: a data folder's .h5 or .pdf files are not images to skip one by one.
_NOT_PICTURES = frozenset({".ps", ".eps", ".pdf", ".h5", ".hdf", ".bufr", ".grib", ".mpeg", ".mpg", ".emf", ".wmf"})


def _readable_extensions() -> frozenset[str]:
    from PIL import Image

    Image.init()  # registers every plugin Pillow ships
    return frozenset(
        ext.lower()
        for ext, fmt in Image.registered_extensions().items()
        if fmt in Image.OPEN and ext.lower() not in _NOT_PICTURES
    )


IMAGE_EXTENSIONS = _readable_extensions() | {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


@dataclass(frozen=True)
class Item:
    """One image of the source, known from its header alone."""

    key: str  # relative POSIX path for files, decimal index for arrays; used in errors and labels
    width: int
    height: int
    mode: str  # PIL mode ("L", "RGB", "RGBA", ...); arrays are described with the same names
    label: int | None = None  # a label the source itself carries (IDX, npz)
    meta: dict = field(default_factory=dict, compare=False)  # written to the sample's json


@dataclass
class Scan:
    """Result of scanning a source: items in their final (sorted) order and per-file problems."""

    items: list[Item]
    unreadable: list[str]  # "key: reason", for files that are not decodable images
    kind: str  # "folder", "zip", "idx" or "npz"
    has_labels: bool = False  # the source carries its own labels (IDX labels file, npz labels)
    stamp: list[str] = field(default_factory=list)  # identity of the input bytes, for resuming


class Source(Protocol):
    """A dataset on disk. Only the writer's (main) process calls these methods."""

    path: str

    def scan(self) -> Scan: ...

    def payload(self, index: int) -> Payload: ...

    def close(self) -> None: ...


def is_image_name(name: str) -> bool:
    """An image by extension, skipping hidden files such as macOS '._x.jpg' resource forks."""
    base = os.path.basename(name)
    return not base.startswith(".") and os.path.splitext(base)[1].lower() in IMAGE_EXTENSIONS


def file_stamp(path: str) -> str:
    """Size and mtime: cheap evidence that a file's bytes are unchanged since the last run."""
    st = os.stat(path)
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"
