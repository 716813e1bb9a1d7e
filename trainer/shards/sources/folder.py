"""A folder of image files, searched recursively, in sorted relative-path order."""

from __future__ import annotations

import os

from .base import Payload, Scan, file_stamp, is_image_name
from .probe import probe_image


def list_images(root: str) -> list[str]:
    """Relative POSIX paths of the images under root, sorted by code point so every OS agrees.

    Hidden folders (".git", ".ipynb_checkpoints") are skipped; symlinked folders are not
    followed, which rules out cycles.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames:
            if is_image_name(name):
                rel = name if rel_dir == "." else os.path.join(rel_dir, name)
                found.append(rel.replace(os.sep, "/"))
    return sorted(found)


class FolderSource:
    def __init__(self, path: str):
        self.path = path
        self._keys: list[str] = []

    def scan(self) -> Scan:
        self._keys = list_images(self.path)
        items, unreadable, stamp = [], [], []
        for key in self._keys:
            full = os.path.join(self.path, key)
            try:
                items.append(probe_image(key, full, {"path": key}))
                stamp.append(file_stamp(full))
            except ValueError as e:
                unreadable.append(f"{key}: {e}")
        self._keys = [it.key for it in items]  # payload(i) is items[i]: unreadable files are left out
        return Scan(items=items, unreadable=unreadable, kind="folder", stamp=stamp)

    def payload(self, index: int) -> Payload:
        # A path: the worker reads the file itself, so the main process moves no pixel bytes.
        return os.path.join(self.path, self._keys[index])

    def close(self) -> None:
        pass
