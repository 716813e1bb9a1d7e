"""Turning `--captions` into the caption text of every item (written as the sample's `.txt`).

Modes:
  auto        folder sources: `name.txt` beside `name.jpg` (the img2dataset layout); every image
              must then have one. No `.txt` at all (or another source kind): no captions.
  none        no captions.
  FILE.csv    columns `file` and `caption` (a header row; `path`/`filename`/`key` and `text` are
              accepted too); several rows for one file = several captions.
  FILE.jsonl  one {"file": ..., "caption": "..." or [...]} object a line.

An item's captions are joined one per line; the training stream draws one line each time it sees
the sample. A missing or empty caption is an error naming the file.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass

from .errors import ShardError, problem
from .sources import Item

CAPTION_MODES = ("auto", "none")
FILE_COLUMNS = ("file", "path", "filename", "key")
TEXT_COLUMNS = ("caption", "text")


@dataclass(frozen=True)
class Captions:
    values: list[str | None]  # one per item: its captions, one per line, or None
    mode: str

    @property
    def captioned(self) -> bool:
        return any(v is not None for v in self.values)


def _clean(text: str) -> str:
    return " ".join(str(text).split())  # one caption = one line


def _normalize(key: str) -> str:
    key = key.replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key


def _from_csv(path: str) -> dict[str, list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
            fields = [c.strip().lower() for c in (rows and rows[0].keys() or [])]
    except OSError as e:
        raise ShardError(f"--captions {path}: cannot read ({e.strerror})") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise ShardError(f"--captions {path}: not a readable CSV ({e})") from None
    file_col = next((c for c in FILE_COLUMNS if c in fields), None)
    text_col = next((c for c in TEXT_COLUMNS if c in fields), None)
    if not rows or file_col is None or text_col is None:
        raise ShardError(
            f"--captions {path}: needs a header row with a 'file' and a 'caption' column "
            f"(found: {', '.join(fields) or 'no rows'})"
        )
    mapping: dict[str, list[str]] = {}
    for row in rows:
        row = {k.strip().lower(): v for k, v in row.items() if k is not None}
        mapping.setdefault(_normalize(row[file_col] or ""), []).append(row[text_col] or "")
    return mapping


def _from_jsonl(path: str) -> dict[str, list[str]]:
    mapping: dict[str, list[str]] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    name = next(obj[c] for c in FILE_COLUMNS if c in obj)
                    text = next(obj[c] for c in TEXT_COLUMNS if c in obj)
                except (ValueError, StopIteration, TypeError):
                    raise ShardError(
                        f"--captions {path}: line {number} is not a JSON object with 'file' and 'caption'"
                    ) from None
                texts = text if isinstance(text, list) else [text]
                mapping.setdefault(_normalize(str(name)), []).extend(str(t) for t in texts)
    except OSError as e:
        raise ShardError(f"--captions {path}: cannot read ({e.strerror})") from None
    return mapping


def _beside(items: list[Item], source_path: str) -> dict[str, list[str]]:
    mapping = {}
    for it in items:
        txt = os.path.join(source_path, os.path.splitext(it.key)[0] + ".txt")
        if os.path.isfile(txt):
            with open(txt, encoding="utf-8", errors="replace") as f:
                mapping[it.key] = f.read().splitlines()
    return mapping


def resolve_captions(mode: str, items: list[Item], *, source_kind: str, source_path: str) -> Captions:
    """Captions for every item, or a ShardError listing the items without one."""
    if mode == "none":
        return Captions([None] * len(items), mode)
    if mode == "auto":
        if source_kind != "folder":
            return Captions([None] * len(items), mode)
        mapping, where = _beside(items, source_path), "NAME.txt beside the image"
        if not mapping:
            return Captions([None] * len(items), mode)
    elif mode.lower().endswith(".csv") or mode.lower().endswith(".jsonl"):
        if not os.path.isfile(mode):
            raise ShardError(f"--captions {mode!r}: no such file; use auto, none, or a .csv/.jsonl of file,caption")
        mapping = _from_csv(mode) if mode.lower().endswith(".csv") else _from_jsonl(mode)
        where = f"an entry in {mode}"
    else:
        raise ShardError(f"--captions {mode!r}: use auto, none, or a path to a .csv or .jsonl of file,caption")
    values, missing = [], []
    for it in items:
        lines = [_clean(t) for t in mapping.get(_normalize(it.key), [])]
        lines = [t for t in lines if t]
        if not lines:
            missing.append(it.key)
        values.append("\n".join(lines))
    if missing:
        raise problem(
            f"images have no caption ({where}) or only empty ones",
            missing,
            "Add their captions, remove the images, or pass --captions none",
        )
    return Captions(values, mode)
