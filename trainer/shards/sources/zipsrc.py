"""A zip archive of images (StyleGAN-style dataset zips), members in sorted name order."""

from __future__ import annotations

import zipfile

from .base import Payload, Scan, file_stamp, is_image_name
from .probe import probe_image


class ZipSource:
    def __init__(self, path: str):
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._names: list[str] = []

    def _open(self) -> zipfile.ZipFile:
        if self._zip is None:
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as e:
                raise ValueError(f"{self.path}: not a readable zip file ({e})") from None
        return self._zip

    def scan(self) -> Scan:
        zf = self._open()
        # macOS archivers add "__MACOSX/" copies of every file; they are metadata, not images.
        self._names = sorted(
            n for n in zf.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/") and is_image_name(n)
        )
        items, unreadable = [], []
        for name in self._names:
            try:
                with zf.open(name) as fp:
                    items.append(probe_image(name, fp, {"path": name}))
            except (ValueError, zipfile.BadZipFile, OSError) as e:
                unreadable.append(f"{name}: {e}")
        # CRCs identify member contents without reading them.
        stamp = [file_stamp(self.path)] + [f"{n}:{zf.getinfo(n).CRC}" for n in self._names]
        self._names = [it.key for it in items]  # payload(i) is items[i]: unreadable members are left out
        return Scan(items=items, unreadable=unreadable, kind="zip", stamp=stamp)

    def payload(self, index: int) -> Payload:
        # Bytes, read here: reopening the archive in every worker would re-parse its directory.
        return self._open().read(self._names[index])

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
