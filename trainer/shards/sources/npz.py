"""A numpy .npz with `images` (N,H,W | N,H,W,C | N,C,H,W, uint8) and optional `labels` (N,)."""

from __future__ import annotations

import os
import zipfile

import numpy as np

from .base import Payload, Scan, file_stamp
from .probe import array_items, array_layout, check_labels, to_hwc


class NpzSource:
    def __init__(self, path: str):
        self.path = path
        self._images: np.ndarray | None = None
        self._layout = "NHW"

    def scan(self) -> Scan:
        # np.load treats any non-zip file as a pickle; say what it really is instead.
        if not zipfile.is_zipfile(self.path):
            raise ValueError(f"{self.path}: not a readable .npz (not a zip archive); save it with np.savez")
        try:
            # allow_pickle=False: an .npz from elsewhere must not be able to run code.
            with np.load(self.path, allow_pickle=False) as f:
                if "images" not in f.files:
                    raise ValueError(
                        f"{self.path}: no array named 'images' (found {sorted(f.files)}); "
                        "save with np.savez(path, images=..., labels=...)"
                    )
                images = f["images"]
                labels = f["labels"] if "labels" in f.files else None
        except (OSError, zipfile.BadZipFile, EOFError) as e:
            raise ValueError(f"{self.path}: not a readable .npz ({e})") from None
        except ValueError as e:
            if "pickle" in str(e).lower():
                raise ValueError(
                    f"{self.path}: holds object arrays, which need pickle; store plain uint8 "
                    "'images' and integer 'labels'"
                ) from None
            raise
        if images.dtype != np.uint8:
            raise ValueError(
                f"{self.path}: 'images' must be uint8, got {images.dtype}; convert with "
                "np.clip(x, 0, 255).astype(np.uint8) (scale [0,1] floats by 255 first)"
            )
        self._layout = array_layout(images.shape, f"{self.path}: 'images'")
        if labels is not None:
            labels = check_labels(labels, images.shape[0], f"{self.path}: 'labels'")
        self._images = images
        name = os.path.basename(self.path)
        items = array_items(images, self._layout, labels, lambda i: {"path": name, "index": i})
        return Scan(
            items=items,
            unreadable=[],
            kind="npz",
            has_labels=labels is not None,
            stamp=[file_stamp(self.path)],
        )

    def payload(self, index: int) -> Payload:
        assert self._images is not None, "scan() first"
        return to_hwc(self._images, self._layout, index)

    def close(self) -> None:
        self._images = None
