"""`hiresgan slurm CONFIG --nodes N --gpus-per-node G [...]`: validate the config, write it and the
sbatch script into the run directory (or print the script with --dry-run), optionally submit."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from launch.slurm import DEFAULT_SIGNAL, RDZV_PORT_BASE, SCRIPT_NAME, SlurmError, SlurmJob, render_sbatch
from trainer.config import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="YAML config, e.g. configs/ffhq256.yaml")
    parser.add_argument("overrides", nargs="*", help="dot-list overrides, e.g. train.kimg=5000")
    parser.add_argument("--nodes", type=int, required=True, help="nodes to allocate")
    parser.add_argument(
        "--gpus-per-node",
        type=int,
        default=1,
        help="GPUs per node, one rank each (default 1; 0 for CPU nodes, see --procs-per-node)",
    )
    parser.add_argument(
        "--procs-per-node", type=int, default=None, help="ranks per node on CPU nodes (--gpus-per-node 0); default 1"
    )
    parser.add_argument("--partition", help="SLURM partition")
    parser.add_argument("--time", help="time limit, e.g. 2-00:00:00 (the preemption warning comes --signal ahead)")
    parser.add_argument("--account", help="SLURM account")
    parser.add_argument(
        "--cpus-per-task",
        type=int,
        default=None,
        help="cores per node for its ranks and their loader workers (default: ranks per node x "
        "(1 + data.workers)); srun is given it too",
    )
    parser.add_argument("--mem", help="memory per node, e.g. 64G (0: all of it; default: the partition's)")
    parser.add_argument(
        "--sbatch-arg",
        dest="sbatch_args",
        action="append",
        default=[],
        metavar="OPTION",
        help="any other #SBATCH directive, repeatable, written with = (its value starts with --), "
        "e.g. --sbatch-arg=--qos=high --sbatch-arg=--constraint=a100 --sbatch-arg=--exclusive",
    )
    parser.add_argument(
        "--signal",
        default=DEFAULT_SIGNAL,
        help=f"warning signal before the time limit, SIG@SECONDS (default {DEFAULT_SIGNAL})",
    )
    parser.add_argument(
        "--rdzv-port-base",
        type=int,
        default=RDZV_PORT_BASE,
        help=f"rendezvous port = this + job id %% 1000 (default {RDZV_PORT_BASE})",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter on the compute nodes (default: this one)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the script; write and submit nothing")
    mode.add_argument("--submit", action="store_true", help="hand the script to sbatch")


def build_job(args: argparse.Namespace, cfg) -> SlurmJob:
    gpus = args.gpus_per_node
    if gpus and args.procs_per_node not in (None, gpus):
        raise SlurmError(
            f"--procs-per-node {args.procs_per_node} with --gpus-per-node {gpus}: on GPU nodes "
            "every rank owns one GPU; leave --procs-per-node out"
        )
    procs = gpus or (args.procs_per_node or 1)
    # Each rank needs a core, and so does each of its loader workers.
    cpus = args.cpus_per_task if args.cpus_per_task is not None else procs * (1 + cfg.data.workers)
    return SlurmJob(
        run_dir=cfg.run_dir.resolve(),
        project_root=PROJECT_ROOT,
        python=args.python,
        job_name=cfg.run.name,
        nodes=args.nodes,
        procs_per_node=procs,
        gpus_per_node=gpus,
        partition=args.partition,
        time=args.time,
        account=args.account,
        cpus_per_task=cpus,
        mem=args.mem,
        sbatch_args=tuple(args.sbatch_args),
        signal=args.signal,
        max_restarts=cfg.launch.max_restarts,
        rdzv_port_base=args.rdzv_port_base,
    )


def run(args: argparse.Namespace) -> int:
    from launch import preflight
    from launch.paths import make_paths_absolute
    from trainer.config import load_config, save_config

    # The script cds into the checkout: relative paths would then name other places.
    cfg = make_paths_absolute(load_config(args.config, list(args.overrides)), Path.cwd())
    job = build_job(args, cfg)
    if cfg.train.batch_size % job.world_size:
        raise ConfigError(
            f"config key 'train.batch_size': {cfg.train.batch_size} does not divide by the world "
            f"size {job.world_size} ({job.nodes} node(s) x {job.procs_per_node} rank(s)); "
            f"use a multiple of {job.world_size}"
        )
    cfg.launch.nproc_per_node = job.procs_per_node  # recorded for people; torchrun decides at run time
    script = render_sbatch(job)
    if args.dry_run:
        if cfg.data.prepare == "none":
            preflight.prepare_data(cfg)  # the shard check of a real render (it writes nothing here)
        else:
            print(f"hiresgan: data.prepare={cfg.data.prepare}: a real render writes the shards first", file=sys.stderr)
        print(script, end="")
        return 0
    preflight.prepare_data(cfg)
    preflight.check_resume(cfg)
    save_config(cfg, cfg.run_dir)
    folder = cfg.run_dir / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SCRIPT_NAME
    tmp = folder / f".{SCRIPT_NAME}.tmp"
    tmp.write_text(script)
    tmp.chmod(0o755)
    os.replace(tmp, path)
    print(f"hiresgan: wrote {path}")
    if not args.submit:
        print(f"hiresgan: submit it with `sbatch {path}`")
        return 0
    try:
        result = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise SlurmError(
            f"--submit: `sbatch` is not on PATH; run this on a SLURM login node, or submit {path} there"
        ) from None
    if result.returncode != 0:
        raise SlurmError(f"--submit: sbatch refused {path}: {result.stderr.strip()}")
    job_id = result.stdout.strip().split(";")[0]
    print(f"hiresgan: submitted job {job_id}; log {folder}/{cfg.run.name}-{job_id}.out")
    return 0
