"""What `data.urls` names, turned into a flat list of shard URLs.

A spec is one or more items separated by `::` or newlines. Each item is one of:

* a local path, brace patterns allowed: `data/ffhq/shard-{000000..000139}.tar`
* a directory: its `manifest.json` if present (finished shards written by `hiresgan shards`),
  else every `*.tar` in it, sorted by name
* a manifest, local or remote: `.../manifest.json` (the shard writer's, version 1, or the
  embedded digits' one); its shard names are resolved relative to the manifest's location
* `http://` / `https://` URLs, brace patterns allowed
* `pipe:COMMAND` writing one tar to stdout (`pipe:aws s3 cp s3://b/shard-{0..9}.tar -`)
* `s3://` and `gs://` URLs, shorthand for a pipe through the `aws` / `gcloud storage` CLIs

Items other than `pipe:` commands may also be separated by whitespace (older configs do so).
Resolution happens once per process at start-up; a missing file or an unfinished shard folder is
a DataError that names the item and says how to fix it.
"""

from __future__ import annotations

import json
import os
import posixpath
import urllib.parse
import urllib.request
from pathlib import Path

import braceexpand

MANIFEST_NAME = "manifest.json"
REMOTE_PREFIXES = ("http://", "https://", "pipe:", "s3://", "gs://")


class DataError(ValueError):
    """Unusable training data, with a message naming the shard, key or URL and how to fix it."""


def split_spec(spec: str) -> list[str]:
    """The items of a spec: split on '::' and newlines; non-pipe items also on whitespace."""
    items: list[str] = []
    for part in spec.replace("::", "\n").splitlines():
        part = part.strip()
        if not part:
            continue
        items.extend([part] if part.startswith("pipe:") else part.split())
    return items


def expand_urls(spec: str) -> list[str]:
    """Brace-expand every item of a spec, without touching the file system or the network."""
    return [url for item in split_spec(spec) for url in braceexpand.braceexpand(item)]


def is_remote(url: str) -> bool:
    return url.startswith(REMOTE_PREFIXES)


def cloud_to_pipe(url: str) -> str:
    """s3:// and gs:// through their vendors' CLIs (credentials come from their usual config)."""
    if url.startswith("s3://"):
        return f"pipe:aws s3 cp --quiet {url} -"
    if url.startswith("gs://"):
        return f"pipe:gcloud storage cat {url}"
    return url


def _manifest_shards(data: object, where: str) -> list[str]:
    """Shard names listed by a manifest (writer version 1 or the digits' unversioned one)."""
    if not isinstance(data, dict) or not isinstance(data.get("shards"), list):
        raise DataError(f"{where}: not a shard manifest (no 'shards' list); point data.urls at the shards "
                        "or at a manifest.json written by `hiresgan shards`")
    if data.get("version", 1) != 1:
        raise DataError(f"{where}: manifest version {data.get('version')!r} is not 1; rewrite the shards "
                        "with this version of hiresgan")
    names = [s.get("name") if isinstance(s, dict) else None for s in data["shards"]]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise DataError(f"{where}: manifest lists no shards or a shard without a 'name'; rerun `hiresgan shards`")
    return names


def _local_manifest(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} not found: the shards were never finished; rerun `hiresgan shards SRC OUT` "
                        "with the same flags to complete them") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable manifest ({exc}); rerun `hiresgan shards`") from None
    return [str(path.parent / name) for name in _manifest_shards(data, str(path))]


def _remote_manifest(url: str, timeout: float) -> list[str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{url}: cannot read the manifest ({exc}); check the URL and that the server is up") from None
    parsed = urllib.parse.urlsplit(url)
    base = posixpath.dirname(parsed.path)
    return [urllib.parse.urlunsplit(parsed._replace(path=posixpath.join(base, urllib.parse.quote(name)), query=""))
            for name in _manifest_shards(data, url)]


def _directory(path: Path) -> list[str]:
    if (path / MANIFEST_NAME).is_file():
        return _local_manifest(path / MANIFEST_NAME)
    if (path / ".progress").is_dir():  # the shard writer's records, but no manifest: interrupted
        raise DataError(f"{path} holds shards from an unfinished `hiresgan shards` run (no manifest.json yet); "
                        "rerun it with the same flags to finish them")
    tars = sorted(str(p) for p in path.glob("*.tar") if p.is_file())
    if not tars:
        raise DataError(f"directory {path} holds no manifest.json and no *.tar shards; write shards into it "
                        "with `hiresgan shards SRC OUT` or point data.urls at the shard files")
    return tars


def _item_urls(item: str, timeout: float) -> list[str]:
    if item.startswith("pipe:"):
        return list(braceexpand.braceexpand(item))
    if item.startswith(("s3://", "gs://")):
        return [cloud_to_pipe(u) for u in braceexpand.braceexpand(item)]
    if item.startswith(("http://", "https://")):
        if urllib.parse.urlsplit(item).path.endswith(".json"):
            return _remote_manifest(item, timeout)
        return list(braceexpand.braceexpand(item))
    if item.startswith("file://"):
        item = item[len("file://"):]
    if item.endswith(".json"):
        return _local_manifest(Path(item))
    if os.path.isdir(item):
        return _directory(Path(item))
    urls = list(braceexpand.braceexpand(item))
    missing = [u for u in urls if not os.path.isfile(u)]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(f"{len(missing)} of {len(urls)} shard(s) not found: {shown}; write shards with "
                        "`hiresgan shards SRC OUT` or fix the pattern")
    return urls


def resolve_urls(spec: str, *, timeout: float = 60.0) -> list[str]:
    """Every shard URL a spec names, in spec order; DataError if it names none or a file is missing."""
    urls = [url for item in split_spec(spec) for url in _item_urls(item, timeout)]
    if not urls:
        raise DataError(f"data.urls {spec!r} names no shard; e.g. data.urls=data/ffhq/shard-{{000000..000139}}.tar, "
                        "a shard folder, a manifest.json, http(s):// URLs or pipe:COMMAND")
    return urls


def find_manifest(spec: str, *, timeout: float = 60.0) -> dict | None:
    """The manifest describing a spec's shards (class names, labels), or None if there is none."""
    items = split_spec(spec)
    remote_json = items and items[0].startswith(("http://", "https://")) and items[0].split("?")[0].endswith(".json")
    if remote_json:
        try:
            with urllib.request.urlopen(items[0], timeout=timeout) as response:
                data = json.loads(response.read().decode("utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None
    if not items or is_remote(items[0]):
        return None
    first = items[0][len("file://"):] if items[0].startswith("file://") else items[0]
    if first.endswith(".json"):
        candidate = Path(first)
    elif os.path.isdir(first):
        candidate = Path(first) / MANIFEST_NAME
    else:
        candidate = Path(next(iter(braceexpand.braceexpand(first)))).parent / MANIFEST_NAME
    try:
        data = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
