"""Per-shard completion records (OUT/.progress/shard-NNNNNN.json), for resuming a run.

A record is written right after its shard is renamed into place. A rerun skips a shard only if
its record carries the same fingerprint (same inputs and settings), starts at the expected
sample, and the file on disk still has the recorded size and SHA-256.
"""

from __future__ import annotations

import json
import os

from .manifest import ShardInfo, write_json_atomic
from .tarshard import file_sha256

PROGRESS_DIR = ".progress"


def record_path(out_dir: str, shard_name: str) -> str:
    return os.path.join(out_dir, PROGRESS_DIR, shard_name[: -len(".tar")] + ".json")


def write_record(
    out_dir: str, info: ShardInfo, fingerprint: str, *, end: int | None = None, skipped: list[str] | None = None
) -> None:
    """`end`: the item after this shard's span (its samples and the skipped items among them);
    `skipped`: those skipped items, so a resumed run still lists them."""
    os.makedirs(os.path.join(out_dir, PROGRESS_DIR), exist_ok=True)
    data = {
        "fingerprint": fingerprint,
        **info.__dict__,
        "end": info.first + info.count if end is None else end,
        "skipped": list(skipped or []),
    }
    write_json_atomic(record_path(out_dir, info.name), data)


def finished_shard(out_dir: str, shard_name: str, first: int, fingerprint: str) -> ShardInfo | None:
    """The ShardInfo of a verified, finished shard, or None if it must be (re)written."""
    try:
        with open(record_path(out_dir, shard_name), encoding="utf-8") as f:
            data = json.load(f)
        info = ShardInfo(**{k: data[k] for k in ("name", "first", "count", "bytes", "sha256")})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if data.get("fingerprint") != fingerprint or info.first != first or info.name != shard_name:
        return None
    path = os.path.join(out_dir, shard_name)
    try:
        if os.path.getsize(path) != info.bytes or file_sha256(path) != info.sha256:
            return None
    except OSError:
        return None
    return info


def record_span(out_dir: str, info: ShardInfo) -> tuple[int, list[str]]:
    """(end, skipped) of a verified finished shard's record."""
    try:
        with open(record_path(out_dir, info.name), encoding="utf-8") as f:
            data = json.load(f)
        return int(data.get("end", info.first + info.count)), list(data.get("skipped", []))
    except (OSError, ValueError, TypeError):
        return info.first + info.count, []


def remove_shard(out_dir: str, shard_name: str) -> None:
    for path in (os.path.join(out_dir, shard_name), record_path(out_dir, shard_name)):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
