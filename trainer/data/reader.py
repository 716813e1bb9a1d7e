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
import tempfile
import time
import urllib.error
import urllib.request
from typing import IO, Iterator

from trainer.data.sources import DataError
from trainer.data.tar import iter_tar

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
        # stderr goes to a file, not a pipe: a chatty command must not block on a full pipe.
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE, stderr=self.stderr)
        self.eof = False

    def read(self, n: int = -1) -> bytes:
        data = self.proc.stdout.read(n)
        self.eof = self.eof or (not data and n != 0)
        return data

    def close(self) -> None:
        self.proc.stdout.close()
        # A reader that stopped early must not wait for a long download to finish; one that
        # read to the end waits for the exit status (the command may still fail after its output).
        if not self.eof and self.proc.poll() is None:
            self.proc.kill()
        rc = self.proc.wait()
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace").strip()
        self.stderr.close()
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


def _tar_samples(stream: IO[bytes], url: str) -> Iterator[dict]:
    """Group the regular members of a tar stream into samples (raises on broken tar data)."""
    sample: dict | None = None
    for name, payload in iter_tar(stream):  # raises TarDamage before the last sample if truncated
        parts = split_name(name)
        if parts is None or parts[0].rsplit("/", 1)[-1].startswith("__"):
            continue  # no key, or tar metadata such as __index__
        key, ext = parts
        if sample is not None and sample["__key__"] != key:
            yield sample
            sample = None
        if sample is None:
            sample = {"__key__": key, "__url__": url}
        if ext in sample:
            raise ValueError(f"member {name!r} appears twice for key {key!r}")
        sample[ext] = payload
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
                while stream.read(1 << 16):  # the end padding; for a pipe, up to its exit
                    pass
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
        except (OSError, EOFError, ValueError) as exc:
            # ValueError (TarDamage): truncated or corrupt tar; EOFError: truncated gzip;
            # OSError: network, pipe exit status.
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
