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
    from launch.slurm import adopt_srun_step
    from trainer.config import load_config, save_config

    overrides = list(args.overrides)
    if args.resume:
        overrides.append(f"run.resume={args.resume}")
    cfg = load_config(args.config, overrides)
    if args.print_config:
        from launch.args import config_yaml

        print(config_yaml(cfg), end="")
        return 0
    adopt_srun_step()  # one task of a multi-task srun step: become that rank
    external = preflight.launched_externally()
    is_main = os.environ.get("RANK", "0") == "0"
    preflight.prepare_data(cfg, is_main=is_main)
    preflight.check_resume(cfg)
    if not external and cfg.launch.master_port:  # before anything is written
        from launch.local import check_rendezvous

        check_rendezvous(cfg.launch.master_addr, cfg.launch.master_port)
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
    from trainer.sampling.latents import parse_seeds, sample_to_folder, translate_folder
    from trainer.sampling.paired import export_family, run_folder_job
    from trainer.superres.sample import is_superres_export, run_upscale

    if args.upscale is not None or is_superres_export(args.export):
        return run_upscale(args)
    if args.inpaint is not None or (args.translate is not None and export_family(args.export) == "pix2pix"):
        return run_folder_job(args)
    if args.prompt is not None or args.prompts is not None or export_family(args.export) == "text2img":
        from trainer.sampling.prompts import run_prompts

        return run_prompts(args)
    if args.translate is not None:
        paths = translate_folder(args.export, args.translate, args.out, direction=args.direction, device=args.device)
        print(f"hiresgan: translated {len(paths)} image(s) ({args.direction}) to {args.out}")
        return 0

    if args.grid or args.style_mix or args.video:
        return _sample_composite(args)
    paths = sample_to_folder(
        args.export,
        parse_seeds(args.seeds),
        args.out,
        class_index=args.class_index,
        truncation=args.truncation,
        device=args.device,
    )
    print(f"hiresgan: wrote {len(paths)} image(s) to {args.out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from trainer.evaluation.run import evaluate, parse_metrics, write_report
    from trainer.superres.sample import is_superres_export

    if is_superres_export(args.export):
        from trainer.evaluation.superres import run_eval

        return run_eval(args.export, args.data, on=args.sr_on, out=args.out, device=args.device)
    if args.watch or args.once:
        from trainer.evaluation.watch import watch

        return watch(
            args.export,
            args.data,
            every_kimg=args.every_kimg,
            port=args.port,
            poll_seconds=args.poll,
            once=args.once,
            names=parse_metrics(args.metrics),
            num_fake=args.num,
            num_real=args.num_real,
            features=args.features,
            inception_weights=args.inception_weights,
            inception_sha256=args.inception_sha256,
            truncation=args.truncation,
            cache_dir=args.cache,
            cas_per_class=args.cas_per_class,
            cas_seed=args.cas_seed,
        )
    report = evaluate(
        args.export,
        args.data,
        names=parse_metrics(args.metrics),
        num_fake=args.num,
        num_real=args.num_real,
        features=args.features,
        inception_weights=args.inception_weights,
        inception_sha256=args.inception_sha256,
        truncation=args.truncation,
        cache_dir=args.cache,
        cas_per_class=args.cas_per_class,
        cas_seed=args.cas_seed,
        cas_prompts=args.classes,
        cas_ceiling_data=args.cas_ceiling_data,
    )
    if report is not None:  # None on a non-zero rank under torchrun: rank 0 reports
        print(write_report(report, args.out))
    return 0


def _export(args: argparse.Namespace) -> int:
    from trainer.export import run_export

    path = run_export(args.source, args.format, out=args.out, truncation=args.truncation, class_index=args.class_index)
    print(f"hiresgan: wrote {path}")
    return 0


def _sample_composite(args: argparse.Namespace) -> int:
    from trainer.sampling.composites import write_composite
    from trainer.sampling.latents import parse_seeds

    kind = "grid" if args.grid else "style-mix" if args.style_mix else "video"
    path = write_composite(
        args.export,
        parse_seeds(args.seeds),
        args.out,
        kind=kind,
        class_index=args.class_index,
        truncation=args.truncation,
        mix_seeds=parse_seeds(args.style_mix) if args.style_mix else None,
        mix_cutoff=args.mix_cutoff,
        video=args.video,
        frames=args.frames,
        fps=args.fps,
    )
    print(f"hiresgan: wrote {path}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from trainer.sampling.synth import synthesize

    m = synthesize(
        args.export,
        args.out,
        per_class=args.per_class,
        truncation=args.truncation,
        classes=args.classes,
        seed=args.seed,
        maxcount=args.maxcount,
        overwrite=args.overwrite,
        progress=not args.quiet,
        device=args.device,
    )
    print(f"hiresgan: wrote {m.num_samples} labelled image(s) in {len(m.shards)} shard(s) to {args.out}")
    return 0


def _shards(args: argparse.Namespace) -> int:
    from trainer.shards import cli as shards_cli

    return shards_cli.run(args)


def _bench(args: argparse.Namespace) -> int:
    from launch.bench import run_bench

    return run_bench(args.config, args.overrides, out=args.out, steps=args.steps, warmup=args.warmup)


def _slurm(args: argparse.Namespace) -> int:
    from launch import slurm_cli

    return slurm_cli.run(args)


def _hostfile(args: argparse.Namespace) -> int:
    from launch import hostfile_cli

    return hostfile_cli.run(args)


def build_parser() -> argparse.ArgumentParser:
    from launch.args import version

    parser = argparse.ArgumentParser(prog="hiresgan", description="Distributed training of high-resolution GANs.")
    parser.add_argument("--version", action="version", version=f"hiresgan {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model from a config (spawns launch.nproc_per_node ranks)")
    train.add_argument("config", type=Path, help="YAML config, e.g. configs/digits.yaml")
    train.add_argument("overrides", nargs="*", help="dot-list overrides, e.g. train.kimg=50 model.channel_base=4096")
    train.add_argument("--resume", help="resume from a run directory or a checkpoints/step-* folder")
    train.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved, validated config (YAML) and exit without training",
    )
    train.set_defaults(func=_train)

    sample = sub.add_parser("sample", help="generate images from an exported generator")
    sample.add_argument("export", type=Path, help="export folder (or its .safetensors), e.g. runs/digits/export")
    sample.add_argument("--seeds", default="0-15", help="seeds, e.g. 0-99 or 1,5,9 (default 0-15)")
    sample.add_argument("--class", dest="class_index", type=int, default=None, help="class index (conditional models)")
    sample.add_argument("--truncation", type=float, default=1.0, help="truncation psi (1: none)")
    sample.add_argument("--out", type=Path, required=True, help="output folder for one PNG per seed")
    sample.add_argument("--device", default="cpu", help="torch device (default cpu)")
    sample.add_argument("--grid", action="store_true", help="one grid.png: a row per class (conditional) or one row")
    sample.add_argument("--style-mix", metavar="COL_SEEDS", help="style-mixing grid: --seeds are rows, these columns")
    sample.add_argument("--mix-cutoff", type=int, default=4, help="style inputs taken from the column seed (coarse)")
    sample.add_argument("--video", type=Path, help="interpolation loop through --seeds, written as this .gif")
    sample.add_argument("--frames", type=int, default=24, help="frames per seed-to-seed transition")
    sample.add_argument("--fps", type=int, default=24)
    sample.add_argument(
        "--translate",
        type=Path,
        default=None,
        help="image-to-image exports (cyclegan, pix2pix): translate every image of this folder instead",
    )
    sample.add_argument("--direction", default="ab", help="with --translate: ab (domain A to B) or ba")
    sample.add_argument(
        "--inpaint",
        type=Path,
        default=None,
        help="inpainting exports: fill the holes of every image of this folder (needs --masks)",
    )
    sample.add_argument(
        "--masks", type=Path, default=None, help="with --inpaint: mask PNGs named like the images, white = missing"
    )
    sample.add_argument(
        "--tile",
        type=int,
        default=0,
        help="with --translate (pix2pix): translate images larger than this in tiles of this size; "
        "with --upscale: LR tile side (default 128)",
    )
    sample.add_argument(
        "--upscale",
        type=Path,
        default=None,
        help="super-resolution exports (esrgan): upscale every image of this folder into --out, same file names",
    )
    sample.add_argument("--prompt", default=None, help="text-to-image exports: the caption to draw (one PNG per seed)")
    sample.add_argument(
        "--prompts",
        type=Path,
        default=None,
        help="text-to-image exports: a file with one prompt a line; line i (from 0) goes to OUT/i/",
    )
    sample.set_defaults(func=_sample)

    ev = sub.add_parser("eval", help="FID / KID / precision-recall / IS of an export against shards")
    ev.add_argument("export", type=Path, help="export folder, its .safetensors, or a run directory")
    ev.add_argument(
        "--data",
        required=True,
        help="real shards, anything data.urls takes: a shard folder, its "
        "manifest.json, or a pattern like 'data/digits/shard-{000000..000007}.tar'",
    )
    ev.add_argument(
        "--metrics",
        default="fid,kid,pr,is",
        help="comma-separated subset of fid,kid,pr,is,cas "
        "(cas: Classification Accuracy Score, class-conditional exports, labelled --data)",
    )
    # --num-fake also works under torchrun, whose parser takes a bare --num for its --numa-binding.
    ev.add_argument("--num", "--num-fake", dest="num", type=int, default=1000, help="generated images (default 1000)")
    ev.add_argument("--num-real", type=int, default=50000, help="real images at most (default 50000)")
    ev.add_argument("--features", default="digits", help="feature network: digits (built in) or inception")
    ev.add_argument("--inception-weights", type=Path, help="Inception safetensors (see docs/EVALUATION.md)")
    ev.add_argument("--inception-sha256", help="expected SHA-256 of --inception-weights")
    ev.add_argument("--truncation", type=float, default=1.0, help="truncation psi (1: none, as for published FIDs)")
    ev.add_argument(
        "--cas-per-class",
        type=int,
        default=100,
        help="cas: generated (and, for the ceiling, real) training images per class (default 100)",
    )
    ev.add_argument("--cas-seed", type=int, default=0, help="cas: seed of latents, real split and classifier")
    ev.add_argument("--cas-ceiling-data", help="cas: real shards the ceiling trains on (then all of --data tests)")
    ev.add_argument("--classes", nargs="+", help="cas of a text export: its prompts, label k of --data = prompt k")
    ev.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "hiresgan" / "eval",
        help="folder for cached real-data features",
    )
    ev.add_argument("--out", type=Path, help="also write the report as JSON here")
    ev.add_argument(
        "--sr-on",
        default="y",
        choices=("y", "rgb"),
        help="super-resolution exports (--data: a folder of HR images): PSNR/SSIM on Y (default) or RGB",
    )
    ev.add_argument("--device", default="cpu", help="torch device for super-resolution exports (default cpu)")
    ev.add_argument(
        "--watch",
        action="store_true",
        help="EXPORT is a run directory: evaluate its checkpoints as they appear (into RUN/eval.jsonl and Prometheus)",
    )
    ev.add_argument("--once", action="store_true", help="like --watch, but evaluate what is there and exit")
    ev.add_argument("--every-kimg", type=float, default=0, help="with --watch: at most one checkpoint per N kimg")
    ev.add_argument("--port", type=int, default=0, help="with --watch: serve hiresgan_eval_* gauges here (0: off)")
    ev.add_argument("--poll", type=float, default=60, help="with --watch: seconds between looks for checkpoints")
    ev.set_defaults(func=_eval)

    exp = sub.add_parser("export", help="export a run, checkpoint or export as safetensors, TorchScript or ONNX")
    exp.add_argument("source", type=Path, help="run directory, checkpoints/step-* folder, or export folder")
    exp.add_argument("--format", default="safetensors", help="safetensors (canonical), torchscript or onnx")
    exp.add_argument("--truncation", type=float, default=1.0, help="truncation psi baked into a graph")
    exp.add_argument("--class", dest="class_index", type=int, help="fix the class of a graph (conditional models)")
    exp.add_argument("--out", type=Path, help="output file (graphs) or folder (safetensors)")
    exp.set_defaults(func=_export)

    from trainer.shards import cli as shards_cli

    synth = sub.add_parser("synth", help="write N generated images per class of an export as labelled shards")
    synth.add_argument("export", type=Path, help="conditional (or text) export folder, e.g. runs/digits/export")
    synth.add_argument("--per-class", type=int, required=True, help="images per class")
    synth.add_argument("--out", type=Path, required=True, help="output folder: shard-*.tar + manifest.json")
    synth.add_argument("--truncation", type=float, default=1.0, help="truncation psi (1: none)")
    synth.add_argument("--classes", nargs="+", help="class names or indices (default: all); prompts for text exports")
    synth.add_argument("--seed", type=int, default=0, help="latents are drawn from (seed, class, n)")
    synth.add_argument("--maxcount", type=int, default=1000, help="samples per shard (default 1000)")
    synth.add_argument("--overwrite", action="store_true", help="replace a shard set already in --out")
    synth.add_argument("--device", default="cpu", help="torch device (default cpu)")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(func=_synth)

    shards = sub.add_parser("shards", help="write an image dataset (folder, zip, IDX, npz) as WebDataset shards")
    shards_cli.add_arguments(shards)
    shards.set_defaults(func=_shards)

    from launch import slurm_cli

    slurm = sub.add_parser("slurm", help="render (and submit) the sbatch script of a multi-node run")
    slurm_cli.add_arguments(slurm)
    slurm.set_defaults(func=_slurm)

    from launch import hostfile_cli

    hostfile = sub.add_parser("hostfile", help="print (or run) the deepspeed --hostfile command of a multi-node run")
    hostfile_cli.add_arguments(hostfile)
    hostfile.set_defaults(func=_hostfile)

    bench = sub.add_parser("bench", help="measure training throughput of a config on this machine")
    bench.add_argument("config", type=Path)
    bench.add_argument("overrides", nargs="*")
    bench.add_argument("--steps", type=int, default=20, help="timed steps")
    bench.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    bench.add_argument("--out", type=Path, default=Path("bench/train.json"), help="JSON results file")
    bench.set_defaults(func=_bench)
    from launch.args import decorate

    decorate(sub)  # defaults, choices and one example in every subcommand's help
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    from launch.args import parse

    args = parse(build_parser(), argv)  # dot-overrides may come before or after the options
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
