"""`python -m trainer.shards` end to end: exit codes and one-line errors."""

import argparse
import os
import subprocess
import sys

from shardkit import make_folder

from trainer.shards import read_manifest
from trainer.shards.cli import add_arguments, parse_size

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "trainer.shards", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_cli_success(tmp_path):
    make_folder(tmp_path / "src", per_class=2)
    r = cli(
        tmp_path / "src",
        tmp_path / "out",
        "--resolution",
        8,
        "--labels",
        "from-folder-names",
        "--maxcount",
        3,
        "--workers",
        2,
        "--format",
        "jpg",
        "--quality",
        90,
        "--maxsize",
        "1M",
    )
    assert r.returncode == 0, r.stderr
    m = read_manifest(tmp_path / "out")
    assert m.num_samples == 4 and [s.count for s in m.shards] == [3, 1]
    assert m.args["quality"] == 90 and m.args["maxsize"] == 1_000_000


def test_cli_bad_input_exit_2_one_line(tmp_path):
    r = cli(tmp_path / "missing", tmp_path / "out", "--resolution", 8)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hiresgan shards: error:") and "does not exist" in lines[0]
    make_folder(tmp_path / "src", per_class=1)
    r = cli(tmp_path / "src", tmp_path / "out", "--resolution", 24)
    assert r.returncode == 2 and "power of two" in r.stderr
    assert not (tmp_path / "out").exists()


def test_cli_usage_errors_exit_2(tmp_path):
    r = cli(tmp_path, tmp_path / "out")  # --resolution is required
    assert r.returncode == 2 and "--resolution" in r.stderr
    r = cli(tmp_path, tmp_path / "out", "--resolution", 8, "--channels", "2")
    assert r.returncode == 2 and "--channels" in r.stderr


def test_add_arguments_wires_into_a_subparser():
    parser = argparse.ArgumentParser(prog="hiresgan")
    sub = parser.add_subparsers(dest="command")
    add_arguments(sub.add_parser("shards"))
    args = parser.parse_args(["shards", "a", "b", "--resolution", "64", "--channels", "1"])
    assert (args.src, args.out, args.resolution, args.channels, args.fmt) == ("a", "b", 64, 1, "png")


def test_parse_size():
    assert parse_size("123") == 123
    assert parse_size("500M") == 500_000_000
    assert parse_size("1GB") == 10**9
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("1.5k") == 1500
