"""The manifest (OUT/manifest.json): what the shards hold, written last, read by the loader."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from .errors import ShardError

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
SHARD_PATTERN = "shard-{:06d}.tar"


@dataclass(frozen=True)
class ShardInfo:
    name: str  # file name relative to OUT, e.g. "shard-000003.tar"
    first: int  # index (sample key) where its items start: its first sample, unless that image was skipped
    count: int  # samples in it
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    num_samples: int
    resolution: int
    channels: int  # 1 or 3 (webp always decodes as RGB; take one channel when this is 1)
    format: str  # tar member extension of the image: "png" | "jpg" | "webp"
    num_classes: int  # 0 when unlabelled
    class_names: list[str] | None  # with --labels from-folder-names, else None
    labelled: bool  # samples carry a "cls" member
    urls: str  # brace pattern relative to OUT, e.g. "shard-{000000..000007}.tar"
    shards: list[ShardInfo]
    args: dict  # the settings that shape the output (not --workers, which does not)
    source: str
    encoder: dict = field(default_factory=dict)  # library versions the bytes depend on
    version: int = MANIFEST_VERSION
    captioned: bool = False  # samples carry a "txt" member: captions, one per line (--captions)
    caption_words: dict | None = None  # word -> count over all captions: the builtin text tokenizer's source
    skipped: list[str] = field(default_factory=list)  # "key: reason" of each image left out (--on-error skip)

    def to_dict(self) -> dict:
        return asdict(self)

    def shard_paths(self, out_dir: str) -> list[str]:
        return [os.path.join(out_dir, s.name) for s in self.shards]


def brace_pattern(num_shards: int) -> str:
    """The webdataset/braceexpand pattern naming shards 0..num_shards-1."""
    if num_shards == 1:
        return SHARD_PATTERN.format(0)
    return "shard-{%06d..%06d}.tar" % (0, num_shards - 1)


def write_json_atomic(path: str, data: dict) -> None:
    """Write via a temp file + os.replace, so readers see the old file or the new one whole."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_manifest(out_dir: str, manifest: Manifest) -> str:
    path = os.path.join(out_dir, MANIFEST_NAME)
    write_json_atomic(path, manifest.to_dict())
    return path


def read_manifest(out_dir: str) -> Manifest:
    """The Manifest of a finished output folder; ShardError naming the file if absent or bad."""
    path = os.path.join(os.fspath(out_dir), MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ShardError(
            f"{path} not found: the shards were never finished; rerun `hiresgan shards SRC OUT` "
            "with the same flags to complete them"
        ) from None
    except (OSError, json.JSONDecodeError) as e:
        raise ShardError(f"{path}: unreadable manifest ({e}); rerun `hiresgan shards`") from None
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        raise ShardError(
            f"{path}: manifest version {data.get('version') if isinstance(data, dict) else None!r} "
            f"is not {MANIFEST_VERSION}; rewrite the shards with this version of hiresgan"
        )
    try:
        data["shards"] = [ShardInfo(**s) for s in data["shards"]]
        return Manifest(**data)
    except (TypeError, KeyError) as e:
        raise ShardError(f"{path}: malformed manifest ({e}); rerun `hiresgan shards`") from None
