"""Writing one shard as a byte-reproducible tar, under a temp name until it is complete.

Headers are built by `tarfile.TarInfo.tobuf` with fixed metadata (mtime 0, uid/gid 0, no user
names, mode 0644) so the bytes depend only on the samples. Writing the stream ourselves, rather
than through `tarfile.TarFile`, lets us hash it as it is written and know its exact size before
adding a sample (for --maxsize).
"""

from __future__ import annotations

import hashlib
import os
import tarfile

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 10240: tar archives are padded to whole records


def member_size(data_len: int) -> int:
    """Bytes one member takes: header block plus data rounded up to whole blocks."""
    return BLOCK + -(-data_len // BLOCK) * BLOCK


def archive_size(members_bytes: int) -> int:
    """Final size of an archive whose members take `members_bytes`: end marker + record pad."""
    return -(-(members_bytes + 2 * BLOCK) // RECORD) * RECORD


def sample_size(fields: dict[str, bytes]) -> int:
    return sum(member_size(len(v)) for v in fields.values())


def temp_name(final_path: str) -> str:
    """Hidden, and not matching 'shard-*.tar', so no glob mistakes it for a finished shard."""
    d, name = os.path.split(final_path)
    return os.path.join(d, f".{name}.partial")


class ShardTar:
    """A shard being written. `commit()` renames it into place; `abort()` removes it."""

    def __init__(self, final_path: str):
        self.final_path = final_path
        self.temp_path = temp_name(final_path)
        self._f = open(self.temp_path, "wb")
        self._sha = hashlib.sha256()
        self.members_bytes = 0
        self.count = 0

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self._sha.update(data)

    def add(self, key: str, fields: dict[str, bytes]) -> None:
        """One sample: members '<key>.<ext>' in sorted extension order."""
        for ext in sorted(fields):
            data = fields[ext]
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._write(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
            self._write(data)
            pad = -len(data) % BLOCK
            if pad:
                self._write(b"\0" * pad)
            self.members_bytes += member_size(len(data))
        self.count += 1

    def size_with(self, extra_members_bytes: int) -> int:
        return archive_size(self.members_bytes + extra_members_bytes)

    def commit(self) -> tuple[int, str]:
        """Finish the archive, fsync, rename into place. Returns (bytes, sha256 hex)."""
        total = archive_size(self.members_bytes)
        self._write(b"\0" * (total - self.members_bytes))
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.temp_path, self.final_path)
        return total, self._sha.hexdigest()

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        try:
            os.remove(self.temp_path)
        except FileNotFoundError:
            pass


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
