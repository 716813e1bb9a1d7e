"""Command-line parsing shared by every subcommand: dot-overrides in any position, the version.

argparse gives a subcommand's `overrides` (nargs="*") only the key=value words before its first
option; words after an option come back unrecognised. Users write `train CONFIG --resume RUN
train.kimg=50` as readily as the other order, so those words are appended to the overrides, in the
order given (a later override of the same key wins, as on one line)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Optional

_OVERRIDE_RE = re.compile(r"^[A-Za-z_][\w.\-]*=")


def version() -> str:
    """The installed package's version, or pyproject's from a plain checkout."""
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        return installed("hiresgan")
    except PackageNotFoundError:
        text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
        match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
        return match.group(1) if match else "unknown"


def parse(parser: argparse.ArgumentParser, argv: Optional[list[str]] = None) -> argparse.Namespace:
    """parse_args, except that key=value words may follow the options of a subcommand with overrides."""
    args, extra = parser.parse_known_args(argv)
    if not extra:
        return args
    if hasattr(args, "overrides") and all(_OVERRIDE_RE.match(word) for word in extra):
        args.overrides = [*(args.overrides or []), *extra]
        return args
    parser.error(f"unrecognized arguments: {' '.join(extra)}")
    raise AssertionError  # parser.error exits


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults appended to every option's help (unless it already says its default), epilog kept."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS, []):
            return text
        return super()._get_help_string(action)


# One example per subcommand, shown at the end of `hiresgan SUBCOMMAND -h`.
EXAMPLES = {
    "train": "hiresgan train configs/digits.yaml train.kimg=50 run.name=try --resume runs/try",
    "sample": "hiresgan sample runs/digits/export --seeds 0-15 --class 3 --out samples/",
    "eval": "hiresgan eval runs/digits/export --data data/digits --metrics fid,kid --out eval.json",
    "export": "hiresgan export runs/digits --format onnx --truncation 0.7",
    "synth": "hiresgan synth runs/digits/export --per-class 100 --out data/synth",
    "shards": "hiresgan shards ~/photos data/faces --resolution 256 --for-config configs/ffhq256.yaml",
    "slurm": "hiresgan slurm configs/ffhq256.yaml --nodes 4 --gpus-per-node 8 --time 2-00:00:00 --submit "
    "data.urls=data/faces run.name=ffhq",
    "hostfile": "hiresgan hostfile configs/ffhq256.yaml --hostfile hosts.txt --master-addr 10.0.0.1",
    "bench": "hiresgan bench configs/digits.yaml --steps 20 --out bench/train.json",
}


def decorate(subparsers) -> None:
    """Every subcommand's help shows each option's default and choices, and one example."""
    for name, parser in subparsers.choices.items():
        parser.formatter_class = HelpFormatter
        if name in EXAMPLES and not parser.epilog:
            parser.epilog = f"example:\n  {EXAMPLES[name]}"


def config_yaml(cfg) -> str:
    """The resolved, validated config as YAML (what the run directory's config.yaml will hold)."""
    from omegaconf import OmegaConf

    from trainer.config import to_dict

    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))
