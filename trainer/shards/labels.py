"""Turning `--labels` into one integer (or None) per item, plus class names.

Modes:
  auto               the labels the source carries (IDX labels file, npz `labels`), else none
  none               no labels: samples get no `cls` entry
  from-folder-names  class = index of the item's top folder among the sorted top folders
  FILE.json          {"rel/path.png": 3, ...} or StyleGAN's {"labels": [["rel/path.png", 3], ...]}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .errors import ShardError, problem
from .sources import Item

LABEL_MODES = ("auto", "none", "from-folder-names")


@dataclass(frozen=True)
class Labels:
    values: list[int | None]  # one per item, all None or all int
    class_names: list[str] | None
    num_classes: int  # 0 when unlabelled
    mode: str  # as given on the command line


def _normalize(key: str) -> str:
    key = key.replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key


def load_label_file(path: str) -> dict[str, int]:
    """The mapping key -> label from a labels JSON file, with errors naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise ShardError(f"--labels {path}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise ShardError(f"--labels {path}: not valid JSON ({e})") from None
    if isinstance(data, dict) and set(data) == {"labels"}:
        pairs = data["labels"]
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in pairs
        ):
            raise ShardError(f'--labels {path}: "labels" must be a list of [path, int] pairs')
    elif isinstance(data, dict):
        pairs = list(data.items())
    else:
        raise ShardError(f'--labels {path}: expected {{"path": int, ...}} or {{"labels": [[path, int], ...]}}')
    mapping: dict[str, int] = {}
    bad = []
    for key, value in pairs:
        # bool is an int subclass; true/false as a class is far more likely a mistake.
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            bad.append(f"{key}: {value!r}")
            continue
        mapping[_normalize(key)] = value
    if bad:
        raise problem(f"labels in {path} are not integers >= 0", bad, "Use class indices 0, 1, 2, ...")
    return mapping


def resolve_labels(
    mode: str, items: list[Item], *, source_kind: str, source_has_labels: bool, source_path: str
) -> Labels:
    """Labels for every item, or a ShardError listing the items that cannot get one."""
    if mode == "none" or (mode == "auto" and not source_has_labels):
        return Labels([None] * len(items), None, 0, mode)
    if mode == "auto":
        values = [it.label for it in items]
        return Labels(values, None, max(values, default=-1) + 1, mode)
    if mode == "from-folder-names":
        if source_kind in ("idx", "npz"):
            raise ShardError(
                f"--labels from-folder-names: {source_path} is an array source with no folders; "
                "use --labels auto (its own labels), a FILE.json, or none"
            )
        loose = [it.key for it in items if "/" not in it.key]
        if loose:
            raise problem(
                f"images under {source_path} are not inside a class folder",
                loose,
                "With --labels from-folder-names every image must sit in SRC/<class>/...; "
                "move them or use --labels none",
            )
        names = sorted({it.key.split("/", 1)[0] for it in items})
        index = {n: i for i, n in enumerate(names)}
        values = [index[it.key.split("/", 1)[0]] for it in items]
        return Labels(values, names, len(names), mode)
    if not os.path.isfile(mode):
        raise ShardError(
            f"--labels {mode!r}: no such file; use auto, none, from-folder-names or a path to a labels JSON file"
        )
    mapping = load_label_file(mode)
    missing = [it.key for it in items if _normalize(it.key) not in mapping]
    if missing:
        raise problem(
            f"images have no entry in {mode}",
            missing,
            "Add them to the labels file (keys are paths relative to SRC; indices for .npz/IDX)",
        )
    values = [mapping[_normalize(it.key)] for it in items]
    return Labels(values, None, max(values, default=-1) + 1, mode)
