"""Dataset sources: pick one from what SRC is (folder, .zip, IDX file(s), .npz)."""

from __future__ import annotations

import os

from ..errors import ShardError
from .base import IMAGE_EXTENSIONS, Item, Payload, Scan, Source
from .folder import FolderSource
from .idx import IDX_NAME, IdxSource
from .npz import NpzSource
from .zipsrc import ZipSource

__all__ = ["Item", "Payload", "Scan", "Source", "open_source"]


def open_source(path: str) -> Source:
    """The Source for SRC, chosen by what it is; ShardError if it is missing or unknown."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ShardError(f"SRC {path!r} does not exist; pass an image folder, .zip, .npz or IDX file")
    if os.path.isdir(path):
        # A folder with IDX files at its top (a downloaded MNIST folder) is an IDX source.
        if any(IDX_NAME.search(n) for n in os.listdir(path)):
            return IdxSource(path)
        return FolderSource(path)
    lower = path.lower()
    if lower.endswith(".zip"):
        return ZipSource(path)
    if lower.endswith(".npz"):
        return NpzSource(path)
    if IDX_NAME.search(lower):
        return IdxSource(path)
    exts = ", ".join(sorted(IMAGE_EXTENSIONS))
    raise ShardError(
        f"SRC {path!r} is not a folder, .zip, .npz or '*-images-idx3-ubyte[.gz]' file; "
        f"for a folder of images ({exts}) pass the folder"
    )
