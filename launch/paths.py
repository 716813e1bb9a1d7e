"""Relative paths of a config made absolute against the caller's directory.

A job rendered now runs later, from elsewhere: the sbatch script `cd`s into the checkout so that
`python -m launch` imports this code, and a relative `run.out_dir` or `data.urls` would then name
another place than the one preflight checked. So at render time every local path of the config is
anchored to the directory the user ran the command from. Remote URLs, pipes and absolute paths
are kept as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

from trainer.config import Config
from trainer.data.sources import is_remote, split_spec

# Keys holding one path; "" (unset) and the keywords listed stay as they are.
PATH_KEYS = {
    "run.out_dir": (),
    "run.resume": ("auto", "none"),
    "eval.inception_weights": (),
    "eval.cache": (),
    "inpaint.masks": ("generate",),
}
# Keys holding a data spec (items separated by '::', newlines or spaces, see trainer.data.sources).
SPEC_KEYS = ("data.urls", "data.urls_b", "data.mix.urls", "eval.data")


def _anchor(path: str, base: Path) -> str:
    if path.startswith("~") or os.path.isabs(path):  # ~ is the user's home on every node: not the caller's folder
        return path
    return os.path.normpath(os.path.join(base, path))


def absolute_spec(spec: str, base: Path) -> str:
    """A data spec with every local item anchored to base (items joined by '::')."""
    items = []
    for item in split_spec(spec):
        if is_remote(item):
            items.append(item)
        elif item.startswith("file://"):
            items.append("file://" + _anchor(item[len("file://") :], base))
        else:
            items.append(_anchor(item, base))
    return "::".join(items)


def _section_and_name(cfg: Config, key: str):
    *parents, name = key.split(".")
    node = cfg
    for part in parents:
        node = getattr(node, part, None)
        if node is None:
            return None, name
    return (node, name) if hasattr(node, name) else (None, name)


def make_paths_absolute(cfg: Config, base: Path) -> Config:
    """Rewrite the config's local paths in place against base (the caller's directory)."""
    base = Path(base).resolve()
    for key, keywords in PATH_KEYS.items():
        node, name = _section_and_name(cfg, key)
        value = getattr(node, name, "") if node is not None else ""
        if value and value not in keywords:
            setattr(node, name, _anchor(value, base))
    for key in SPEC_KEYS:
        node, name = _section_and_name(cfg, key)
        value = getattr(node, name, "") if node is not None else ""
        if value:
            setattr(node, name, absolute_spec(value, base))
    text = getattr(cfg, "text", None)
    if text is not None and str(getattr(text, "encoder", "")).startswith("hf:"):
        text.encoder = "hf:" + _anchor(text.encoder[3:], base)
    return cfg
