"""Order-preserving parallel encoding with a bounded number of tasks in flight.

`Pool.imap` would drain the whole task iterator into its queue at once; since tasks carry pixel
data (zip bytes, array slices), that would hold a large dataset in memory. Here at most `window`
chunks are queued, and results come back in submission order, so the output is the same for any
number of workers.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from .encode import EncodeSettings, process_chunk
from .sources.base import Payload

CHUNK = 8  # images per task: amortises inter-process overhead, small enough to keep order cheap


def _chunks(tasks: Iterator[tuple[int, Payload]], size: int) -> Iterator[list[tuple[int, Payload]]]:
    chunk = []
    for task in tasks:
        chunk.append(task)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Encoder:
    """Encodes (index, payload) tasks in order, in-process (workers=1) or with a process pool."""

    def __init__(self, settings: EncodeSettings, workers: int):
        self.settings = settings
        self.workers = workers
        self._pool = None
        if workers > 1:
            # spawn: the caller may be a trainer process with torch threads, which fork can
            # deadlock; spawn also behaves the same on every OS. An executor rather than
            # multiprocessing.Pool: if a worker dies (OOM kill), Pool waits forever while the
            # executor raises BrokenProcessPool.
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def map(self, tasks: Iterator[tuple[int, Payload]]) -> Iterator[tuple[int, bytes | None, str | None]]:
        if self._pool is None:
            for chunk in _chunks(tasks, CHUNK):
                yield from process_chunk(chunk, self.settings)
            return
        pending: deque = deque()
        window = 4 * self.workers
        for chunk in _chunks(tasks, CHUNK):
            pending.append(self._pool.submit(process_chunk, chunk, self.settings))
            if len(pending) >= window:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()

    def close(self) -> None:
        if self._pool is not None:
            # Abandoned chunks (skipped shards, errors) are cancelled; at most one chunk per
            # worker is still running and finishes in moments.
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "Encoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__: list[str] = ["Encoder", "CHUNK"]
