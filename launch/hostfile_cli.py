"""`hiresgan hostfile CONFIG --hostfile FILE`: validate the config against the hostfile, write the
resolved config into the run directory (every node reads it there) and print, or run, the
matching `deepspeed --hostfile` command."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from launch.hostfile import HostfileError, deepspeed_command, parse_hostfile, shell_line, world_size
from trainer.config import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="YAML config")
    parser.add_argument("overrides", nargs="*", help="dot-list overrides, e.g. train.kimg=5000")
    parser.add_argument("--hostfile", type=Path, required=True, help="DeepSpeed hostfile: one 'HOST slots=N' per node")
    parser.add_argument("--master-addr", help="address of the first node (default: DeepSpeed asks it over ssh)")
    parser.add_argument("--master-port", type=int, default=29500, help="rendezvous port (default 29500)")
    parser.add_argument(
        "--node-rank",
        type=int,
        default=None,
        help="ssh-less launch: the command for this node (run it on every node with its rank)",
    )
    parser.add_argument("--run", action="store_true", help="run the command instead of printing it")


def _deepspeed_launcher() -> str:
    # The `deepspeed` script next to this interpreter (a venv's bin/ is often not on PATH).
    beside = Path(sys.executable).parent / "deepspeed"
    return str(beside) if beside.is_file() else (shutil.which("deepspeed") or "deepspeed")


def run(args: argparse.Namespace) -> int:
    from launch import preflight
    from trainer.config import load_config, save_config

    hosts = parse_hostfile(args.hostfile)
    cfg = load_config(args.config, list(args.overrides))
    world = world_size(hosts)
    if cfg.train.batch_size % world:
        raise ConfigError(
            f"config key 'train.batch_size': {cfg.train.batch_size} does not divide by the "
            f"{world} ranks of {args.hostfile}; use a multiple of {world}"
        )
    if not 1 <= args.master_port <= 65535:
        raise HostfileError(f"--master-port {args.master_port}: must be a TCP port (1-65535)")
    preflight.prepare_data(cfg)
    preflight.check_resume(cfg)
    save_config(cfg, cfg.run_dir)
    config = (cfg.run_dir / "config.yaml").resolve()
    argv = deepspeed_command(
        args.hostfile.resolve(),
        config,
        hosts,
        master_addr=args.master_addr,
        master_port=args.master_port,
        node_rank=args.node_rank,
        deepspeed=_deepspeed_launcher(),
    )
    if not args.run:
        print(shell_line(argv))
        return 0
    env = dict(os.environ)
    # DeepSpeed forwards PYTHON* variables to the other nodes: they import this tree too.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    try:
        return subprocess.run(argv, env=env, cwd=PROJECT_ROOT).returncode
    except FileNotFoundError:
        print(f"hiresgan: error: `{argv[0]}` not found; install deepspeed in this environment", file=sys.stderr)
        return 2
