"""`hiresgan shards SRC OUT`: the command-line face of write_shards.

launch/cli.py wires it as a subcommand via `add_arguments` + `run`; `python -m trainer.shards`
uses `main`.
"""

from __future__ import annotations

import argparse
import re
import sys

from .errors import ShardError
from .writer import (
    CROPS,
    DEFAULT_CROPS_PER_IMAGE,
    DEFAULT_MAXCOUNT,
    DEFAULT_MAXSIZE,
    ON_ERROR,
    SKIPPED_NAME,
    write_shards,
)

PROG = "hiresgan shards"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}


def parse_size(text: str) -> int:
    """'1000000', '500M', '1GB', '2GiB' -> bytes (k/M/G decimal, Ki/Mi/Gi binary)."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; use e.g. 500000000, 500M or 1GiB")
    unit = (m.group(2) or "").lower().rstrip("b")
    return int(float(m.group(1)) * _UNITS[unit])


def parse_channels(text: str):
    if text == "auto":
        return text
    if text in ("1", "3"):
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r}: use auto, 1 or 3")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "src", metavar="SRC", help="image folder (recursive), .zip of images, .npz, or MNIST IDX file/folder"
    )
    parser.add_argument("out", metavar="OUT", help="output folder for shard-NNNNNN.tar and manifest.json")
    parser.add_argument(
        "--resolution", type=int, required=True, help="output side length in pixels; a power of two >= 4"
    )
    parser.add_argument(
        "--crop",
        choices=CROPS,
        default="center",
        help="center: crop the largest centred square; none: images must already be "
        "square; full: keep every image whole at its own size (--resolution is "
        "the smallest side allowed); tiled: every RESxRES tile; random: "
        "--crops-per-image RESxRES crops per image (default: center)",
    )
    parser.add_argument(
        "--crops-per-image",
        type=int,
        default=DEFAULT_CROPS_PER_IMAGE,
        help=f"--crop random: crops drawn per image (default: {DEFAULT_CROPS_PER_IMAGE})",
    )
    parser.add_argument(
        "--crop-seed", type=int, default=0, help="--crop random: seed of the crop positions (default: 0)"
    )
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=("png", "jpg", "webp"),
        default="png",
        help="image encoding in the shards (default: png, lossless)",
    )
    parser.add_argument(
        "--quality",
        type=int,
        default=None,
        help="jpg: 1-100 (default 95); webp: 1-99 lossy, 100 lossless (default 100)",
    )
    parser.add_argument(
        "--labels",
        default="auto",
        help="auto (the source's own labels, if any), none, from-folder-names, or FILE.json (default: auto)",
    )
    parser.add_argument(
        "--captions",
        default="auto",
        help="auto (NAME.txt beside each image of a folder, if any), none, or a FILE.csv / "
        "FILE.jsonl of file,caption (several rows per file: several captions); written as "
        "each sample's .txt (default: auto)",
    )
    parser.add_argument(
        "--maxcount", type=int, default=DEFAULT_MAXCOUNT, help=f"most samples per shard (default: {DEFAULT_MAXCOUNT})"
    )
    parser.add_argument(
        "--maxsize",
        type=parse_size,
        default=DEFAULT_MAXSIZE,
        help="most bytes per shard, e.g. 500M or 1GiB (default: 1GiB); a single larger sample gets a shard of its own",
    )
    parser.add_argument("--workers", type=int, default=1, help="encoding processes (default: 1)")
    parser.add_argument(
        "--channels",
        type=parse_channels,
        default="auto",
        help="auto (1 if every image is grayscale, else 3), 1 or 3 (default: auto)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--on-error",
        choices=ON_ERROR,
        default="skip",
        help="skip: leave unreadable or undecodable images out, count them and list them (on "
        "stderr and in OUT/skipped.txt); stop: stop at the first ones and write nothing "
        "(default: skip)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an OUT that already holds a finished shard set or other files "
        "(an interrupted run in OUT is resumed without it)",
    )
    parser.add_argument(
        "--for-config",
        metavar="CONFIG",
        default=None,
        help="warn when the shards are fewer than the ranks x loader workers of this training "
        "config (launch.nproc_per_node x --nodes x data.workers), which makes every "
        "loader slot read the same shards",
    )
    parser.add_argument("--nodes", type=int, default=1, help="with --for-config: nodes the run will use (default: 1)")
    parser.add_argument(
        "--paired",
        metavar="TARGETS",
        default=None,
        help="paired shards for pix2pix: SRC holds the inputs, TARGETS the targets, paired by "
        "file name (members <key>.a.png, <key>.b.png; see trainer/shards/paired.py)",
    )
    parser.add_argument(
        "--input-channels",
        type=parse_channels,
        default="auto",
        help="with --paired: channels of the inputs, auto, 1 or 3 (default: auto)",
    )


def run(args: argparse.Namespace) -> int:
    """0 on success; 2 with one line on stderr for bad input or settings; 1 when --paired left
    some pairs out (each named on stderr, the rest written)."""
    if args.paired is not None:
        return _run_paired(args)
    try:
        manifest = write_shards(
            args.src,
            args.out,
            resolution=args.resolution,
            crop=args.crop,
            fmt=args.fmt,
            quality=args.quality,
            labels=args.labels,
            maxcount=args.maxcount,
            maxsize=args.maxsize,
            workers=args.workers,
            channels=args.channels,
            progress=not args.quiet and sys.stderr.isatty(),
            crops_per_image=args.crops_per_image,
            crop_seed=args.crop_seed,
            captions=args.captions,
            on_error=args.on_error,
            overwrite=args.overwrite,
        )
    except ShardError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    for line in manifest.skipped[:MAX_SKIPS_SHOWN]:
        print(f"{PROG}: skipped {line}", file=sys.stderr)
    if len(manifest.skipped) > MAX_SKIPS_SHOWN:
        print(f"{PROG}: ... and {len(manifest.skipped) - MAX_SKIPS_SHOWN} more", file=sys.stderr)
    if not args.quiet or manifest.skipped:
        skipped = (
            f"; skipped {len(manifest.skipped)} image(s), listed in {args.out}/{SKIPPED_NAME}"
            if manifest.skipped
            else ""
        )
        print(
            f"{PROG}: wrote {manifest.num_samples} samples in {len(manifest.shards)} shard(s) "
            f"to {args.out} ({manifest.urls}){skipped}",
            file=sys.stderr,
        )
    if args.for_config:
        warning = shard_count_warning(args.for_config, len(manifest.shards), manifest.num_samples, nodes=args.nodes)
        if warning:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
    return 0


MAX_SKIPS_SHOWN = 20


def shard_count_warning(config: str, shards: int, samples: int, *, nodes: int = 1) -> str:
    """'' when every loader slot of the config's run gets shards of its own, else why and the fix.
    A config that does not load is a warning too (the shards are written; only the check is off)."""
    from trainer.config import ConfigError, load_config

    try:
        cfg = load_config(config)
    except (ConfigError, OSError, ValueError) as e:
        return f"--for-config {config}: cannot check the shard count ({e})"
    ranks = max(1, cfg.launch.nproc_per_node) * max(1, nodes)
    readers = ranks * max(1, cfg.data.workers)
    if shards >= readers:
        return ""
    maxcount = max(1, samples // readers)
    return (
        f"{shards} shard(s) for {ranks} rank(s) x {max(1, cfg.data.workers)} loader worker(s) = {readers} "
        f"loader slots of {config}: with fewer shards than slots, slots share shards and read the same "
        f"bytes; write at least {readers} shards, e.g. --maxcount {maxcount}"
    )


def _run_paired(args: argparse.Namespace) -> int:
    from .paired import write_paired_shards

    try:
        result = write_paired_shards(
            args.src,
            args.paired,
            args.out,
            resolution=args.resolution,
            channels=args.channels,
            input_channels=args.input_channels,
            maxcount=args.maxcount,
        )
    except ShardError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    for line in result.errors:
        print(f"{PROG}: error: {line}", file=sys.stderr)
    if not args.quiet:
        m = result.manifest
        print(
            f"{PROG}: wrote {m.num_samples} pairs in {len(m.shards)} shard(s) to {args.out} ({m.urls})"
            + (f"; {len(result.errors)} left out (see above)" if result.errors else ""),
            file=sys.stderr,
        )
    return 1 if result.errors else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Write an image dataset as WebDataset shards.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
