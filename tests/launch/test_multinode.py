"""Multi-node launches with every "node" on this machine: two torchrun agents meeting in a c10d
rendezvous, and DeepSpeed's hostfile launcher run ssh-less once per node. Each rank runs
`hiresgan train`, which must act as that rank (no second spawn) and train one world of 2."""

import json
import subprocess
import sys

import pytest
from launchkit import ROOT, hiresgan, pythonpath_env, train_args
from portkit import free_ports

from launch.local import SIGNALS_TO_HANDLE

pytestmark = pytest.mark.slow

RUN = ["train.kimg=0.032", "train.checkpoint_kimg=10", "train.sample_kimg=10"]


def _finished_world(run_dir):
    state = json.loads(sorted((run_dir / "checkpoints").glob("step-*"))[-1].joinpath("state.json").read_text())
    assert (run_dir / "export" / "generator.safetensors").is_file()
    return state["world_size"], state["step"]


def _run_nodes(commands, tmp_path):
    procs = [
        subprocess.Popen(
            cmd, cwd=ROOT, env=pythonpath_env(), stdout=open(tmp_path / f"node{i}.log", "w"), stderr=subprocess.STDOUT
        )
        for i, cmd in enumerate(commands)
    ]
    codes = [p.wait(timeout=600) for p in procs]
    logs = [(tmp_path / f"node{i}.log").read_text() for i in range(len(commands))]
    assert codes == [0] * len(commands), "\n".join(log[-2000:] for log in logs)
    return logs


def test_two_torchrun_nodes_meet_in_a_c10d_rendezvous(tmp_path, digit_shards):
    port = free_ports()
    args = train_args(digit_shards[1], tmp_path, "tr", *RUN, "launch.nproc_per_node=1")
    node = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}",
        "--rdzv-id=two-nodes",
        f"--signals-to-handle={SIGNALS_TO_HANDLE}",
        "-m",
        "launch",
        *args,
    ]
    _run_nodes([node, node], tmp_path)
    assert _finished_world(tmp_path / "tr") == (2, 4)


def test_deepspeed_hostfile_command_runs_on_each_node(tmp_path, digit_shards):
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("node1 slots=1\nnode2 slots=1\n")
    port = free_ports()
    args = train_args(digit_shards[1], tmp_path, "hf", *RUN)[1:]  # without the "train" subcommand
    commands = []
    for rank in (0, 1):  # what an operator runs on each node (rendered once per node)
        shown = hiresgan(
            "hostfile",
            *args,
            "--hostfile",
            hostfile,
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            port,
            "--node-rank",
            rank,
        )
        assert shown.returncode == 0, shown.stderr
        line = shown.stdout.strip().splitlines()[-1]
        assert f"--hostfile {hostfile}" in line and f"--no_ssh --node_rank {rank}" in line
        commands.append(line.split())
    _run_nodes(commands, tmp_path)
    assert _finished_world(tmp_path / "hf") == (2, 4)
