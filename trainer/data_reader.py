"""Read one shard URL into raw samples, with shard-level retries and a skip-or-fail policy.

A sample is a dict {'__key__', '__url__', ext: bytes, ...}, grouped from consecutive tar members
that share a key, as WebDataset does: `dir/0042.png` and `dir/0042.cls` -> key `dir/0042`.

Remote shards (http(s)://, pipe:) that break off are reopened up to `retries` times; the
samples already delivered are skipped on the retry, so a transient network error neither
duplicates nor loses a sample and a resumed run stays exact. Local files are not retried (a
corrupt file does not heal). When a shard or a sample stays unreadable, the ErrorPolicy either
skips it (counted, logged once per shard) or raises DataError naming the shard and the key.
"""

from __future__ import annotations

import logging
import subprocess
import tarfile
import time
import urllib.error
from collections import deque
import urllib.request
from typing import IO, Iterator

from trainer.data_sources import DataError

log = logging.getLogger(__name__)

POLICIES = ("skip", "fail")


class ErrorPolicy:
    """Skip (count + warn once per shard) or fail on unreadable data; one per loader worker."""

    def __init__(self, policy: str = "skip"):
        if policy not in POLICIES:
            raise DataError(f"config key 'data.on_error': got {policy!r}; valid choices: {', '.join(POLICIES)}")
        self.policy = policy
        self.skipped = 0  # taken (and reset) by the stream, which reports it in each Batch
        self._warned: set[str] = set()

    def __call__(self, url: str, key: str | None, reason: str) -> None:
        where = f"shard {url}" + (f", sample {key!r}" if key else "")
        if self.policy == "fail":
            raise DataError(f"{where}: {reason}; fix or remove the shard, or set data.on_error=skip "
                            "to skip unreadable samples (they are counted in hiresgan_corrupt_samples_total)")
        self.skipped += 1
        if url not in self._warned:  # once per shard: a broken shard must not flood the log
            self._warned.add(url)
            log.warning("skipping unreadable data (%s: %s); further problems in this shard are only counted",
                        where, reason)

    def take(self) -> int:
        n, self.skipped = self.skipped, 0
        return n


class _PipeStream:
    """stdout of a shell command; closing it waits and turns a failed exit into an OSError."""

    def __init__(self, command: str):
        self.command = command
        self.proc = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def read(self, n: int = -1) -> bytes:
        return self.proc.stdout.read(n)

    def close(self) -> None:
        self.proc.stdout.close()
        # A reader that stopped early must not wait for a long download to finish.
        if self.proc.poll() is None:
            self.proc.kill()
        rc = self.proc.wait()
        err = self.proc.stderr.read().decode(errors="replace").strip()
        self.proc.stderr.close()
        if rc not in (0, -9):
            raise OSError(f"command {self.command!r} exited with status {rc}" + (f": {err[-300:]}" if err else ""))


class _Permanent(Exception):
    """An error that retrying cannot fix (HTTP 404, a missing local file)."""


def open_url(url: str, timeout: float) -> IO[bytes]:
    """A readable binary stream for a shard URL (caller closes it)."""
    if url.startswith("pipe:"):
        return _PipeStream(url[len("pipe:"):])
    if url.startswith(("http://", "https://")):
        try:
            return urllib.request.urlopen(url, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise _Permanent(f"HTTP {exc.code} {exc.reason}") from None
            raise
    path = url[len("file://"):] if url.startswith("file://") else url
    try:
        return open(path, "rb")
    except OSError as exc:
        raise _Permanent(str(exc)) from None


def split_name(name: str) -> tuple[str, str] | None:
    """'dir/0042.seg.png' -> ('dir/0042', 'seg.png'); None for a name without an extension."""
    slash = name.rfind("/") + 1
    dot = name.find(".", slash)
    if dot <= slash:
        return None
    return name[:dot], name[dot + 1:].lower()


class _TailReader:
    """Counts the bytes read and keeps the last few, to check the tar's end-of-archive block."""

    WINDOW = 1 << 16

    def __init__(self, stream: IO[bytes]):
        self.stream, self.total = stream, 0
        self.chunks: deque[bytes] = deque()  # the last chunks read, WINDOW bytes or a bit more
        self.kept = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.total += len(data)
        self.chunks.append(data)
        self.kept += len(data)
        while self.kept - len(self.chunks[0]) >= self.WINDOW:  # no copying: this runs per read
            self.kept -= len(self.chunks.popleft())
        return data

    def block_at(self, offset: int) -> bytes | None:
        """The 512 bytes at `offset` if still in the window, else None."""
        start = offset - (self.total - self.kept)
        return b"".join(self.chunks)[start:start + tarfile.BLOCKSIZE] if start >= 0 else None


def _check_end(reader: _TailReader, offset: int) -> None:
    """Python's tarfile ends quietly at a missing or garbled header; a whole tar ends in a zero
    block there. Without this check a shard cut at a member boundary would look complete."""
    while reader.read(1 << 16):  # the rest is the end-of-archive padding
        pass
    block = reader.block_at(offset)
    if block is None or len(block) < tarfile.BLOCKSIZE:
        raise EOFError(f"tar ends at byte {reader.total} without its end-of-archive block (truncated?)")
    if block.count(0) != tarfile.BLOCKSIZE:
        raise tarfile.ReadError(f"invalid tar header at byte {offset} (corrupt data)")


def _tar_samples(stream: IO[bytes], url: str) -> Iterator[dict]:
    """Group the regular members of a tar stream into samples (raises on broken tar data)."""
    sample: dict | None = None
    reader = _TailReader(stream)
    with tarfile.open(fileobj=reader, mode="r|*") as tar:
        for member in tar:
            if not member.isreg():
                continue
            parts = split_name(member.name)
            if parts is None or parts[0].rsplit("/", 1)[-1].startswith("__"):
                continue  # no key, or tar metadata such as __index__
            key, ext = parts
            payload = tar.extractfile(member).read()
            if sample is not None and sample["__key__"] != key:
                yield sample
                sample = None
            if sample is None:
                sample = {"__key__": key, "__url__": url}
            if ext in sample:
                raise ValueError(f"member {member.name!r} appears twice for key {key!r}")
            sample[ext] = payload
        _check_end(reader, tar.offset)  # before the last sample: it may be missing members
    if sample is not None:
        yield sample


def read_shard(url: str, policy: ErrorPolicy, *, retries: int = 3, timeout: float = 60.0,
               retry_wait: float = 0.5) -> Iterator[dict]:
    """The samples of one shard, exactly once each, retrying remote shards that break off."""
    delivered, attempt, last_key = 0, 0, None
    remote = url.startswith(("http://", "https://", "pipe:"))
    while True:
        seen, close_error = 0, None
        try:
            stream = open_url(url, timeout)
            completed = False
            try:
                for sample in _tar_samples(stream, url):
                    seen += 1
                    if seen > delivered:  # on a retry, skip what the last attempt delivered
                        delivered, last_key = seen, sample["__key__"]
                        yield sample
                completed = True
            finally:
                try:
                    stream.close()
                except OSError as exc:  # a pipe's exit status: the error when the read went fine
                    if completed:
                        raise
                    close_error = exc  # else keep the reader's error, adding this as its cause
            return
        except _Permanent as exc:
            policy(url, None, f"cannot open ({exc})")
            return
        except (OSError, EOFError, tarfile.TarError, ValueError) as exc:
            # EOFError/TarError: truncated or corrupt tar; OSError: network, pipe exit status.
            reason = f"{type(exc).__name__}: {exc}" + (f" ({close_error})" if close_error else "")
            reason += f" (after sample {last_key!r})" if last_key else ""
            if remote and attempt < retries:
                attempt += 1
                log.warning("shard %s broke off (%s); retry %d of %d", url, reason, attempt, retries)
                time.sleep(retry_wait * 2 ** (attempt - 1))
                continue
            tries = f" after {attempt + 1} attempts" if remote else ""
            policy(url, None, f"unreadable{tries}: {reason}; {delivered} sample(s) read before the error")
            return
