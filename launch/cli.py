"""The `hiresgan` command line: parse -> build -> run. Each subcommand is one small function."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

USER_ERRORS: tuple[type[Exception], ...] = (ValueError, FileNotFoundError)


def _train(args: argparse.Namespace) -> int:
    from launch import preflight
    from launch.local import run_local
    from trainer.config import load_config, save_config

    overrides = list(args.overrides)
    if args.resume:
        overrides.append(f"run.resume={args.resume}")
    cfg = load_config(args.config, overrides)
    external = preflight.launched_externally()
    is_main = os.environ.get("RANK", "0") == "0"
    preflight.prepare_data(cfg, is_main=is_main)
    preflight.check_resume(cfg)
    if is_main:
        save_config(cfg, cfg.run_dir)
    if external:
        # torchrun or srun made the ranks already: this process is one of them.
        from trainer.worker import run_worker

        if not is_main:
            preflight.wait_for_config(cfg.run_dir)
        return run_worker(cfg.run_dir)
    return run_local(cfg)


def _sample(args: argparse.Namespace) -> int:
    from trainer.sample import parse_seeds, sample_to_folder, translate_folder

    if args.translate is not None:
        paths = translate_folder(args.export, args.translate, args.out, direction=args.direction, device=args.device)
        print(f"hiresgan: translated {len(paths)} image(s) ({args.direction}) to {args.out}")
        return 0

    paths = sample_to_folder(args.export, parse_seeds(args.seeds), args.out, class_index=args.class_index,
                             truncation=args.truncation, device=args.device)
    print(f"hiresgan: wrote {len(paths)} image(s) to {args.out}")
    return 0


def _shards(args: argparse.Namespace) -> int:
    from trainer.shards import cli as shards_cli

    return shards_cli.run(args)


def _bench(args: argparse.Namespace) -> int:
    from trainer.bench import run_bench

    return run_bench(args.config, args.overrides, out=args.out, steps=args.steps, warmup=args.warmup)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hiresgan", description="Distributed training of high-resolution GANs.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model from a config (spawns launch.nproc_per_node ranks)")
    train.add_argument("config", type=Path, help="YAML config, e.g. configs/digits.yaml")
    train.add_argument("overrides", nargs="*", help="dot-list overrides, e.g. train.kimg=50 model.channel_base=4096")
    train.add_argument("--resume", help="resume from a run directory or a checkpoints/step-* folder")
    train.set_defaults(func=_train)

    sample = sub.add_parser("sample", help="generate images from an exported generator")
    sample.add_argument("export", type=Path, help="export folder (or its .safetensors), e.g. runs/digits/export")
    sample.add_argument("--seeds", default="0-15", help="seeds, e.g. 0-99 or 1,5,9 (default 0-15)")
    sample.add_argument("--class", dest="class_index", type=int, default=None, help="class index (conditional models)")
    sample.add_argument("--truncation", type=float, default=1.0, help="truncation psi (1: none)")
    sample.add_argument("--out", type=Path, required=True, help="output folder for one PNG per seed")
    sample.add_argument("--device", default="cpu", help="torch device (default cpu)")
    sample.add_argument("--translate", type=Path, default=None,
                        help="image-to-image exports (cyclegan): translate every image of this folder instead")
    sample.add_argument("--direction", default="ab", help="with --translate: ab (domain A to B) or ba")
    sample.set_defaults(func=_sample)

    from trainer.shards import cli as shards_cli

    shards = sub.add_parser("shards", help="write an image dataset (folder, zip, IDX, npz) as WebDataset shards")
    shards_cli.add_arguments(shards)
    shards.set_defaults(func=_shards)

    bench = sub.add_parser("bench", help="measure training throughput of a config on this machine")
    bench.add_argument("config", type=Path)
    bench.add_argument("overrides", nargs="*")
    bench.add_argument("--steps", type=int, default=20, help="timed steps")
    bench.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    bench.add_argument("--out", type=Path, default=Path("bench/train.json"), help="JSON results file")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"hiresgan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hiresgan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
