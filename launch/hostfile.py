"""Clusters without SLURM: read a DeepSpeed hostfile and build the matching `deepspeed` command line.

A hostfile names one node per line, `HOST slots=N` (N ranks, one per GPU); `#` starts a comment.
The `deepspeed` launcher reaches the other hosts over passwordless ssh (pdsh), or, with
`--no_ssh`, runs the same command on every node with its own `--node_rank`. Either way each rank
runs `python -m launch train CONFIG` with RANK/WORLD_SIZE set, so it is a worker (no second spawn).

Preemption: DeepSpeed's per-node launcher passes SIGTERM on to the ranks and kills them 30 s later;
that is the checkpoint budget here (torchrun and SLURM give 120 s; see docs/LAUNCH.md).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

_LINE = re.compile(r"^(?P<host>[A-Za-z0-9_.\-:\[\]]+)\s+slots=(?P<slots>\d+)$")


class HostfileError(ValueError):
    """A hostfile DeepSpeed would reject or misread; the message names the file and line."""


@dataclass(frozen=True)
class Host:
    name: str
    slots: int


def parse_hostfile(path: Path) -> list[Host]:
    path = Path(path)
    if not path.is_file():
        raise HostfileError(f"--hostfile '{path}' does not exist; write one line per node: HOST slots=GPUS")
    hosts: list[Host] = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if match is None:
            raise HostfileError(f"{path}:{number}: '{raw.strip()}' is not 'HOST slots=N' (e.g. 'node1 slots=8')")
        slots = int(match["slots"])
        if slots < 1:
            raise HostfileError(f"{path}:{number}: slots={slots}; every host needs at least one slot")
        if any(h.name == match["host"] for h in hosts):
            raise HostfileError(f"{path}:{number}: host '{match['host']}' is listed twice; list each node once")
        hosts.append(Host(match["host"], slots))
    if not hosts:
        raise HostfileError(f"{path}: names no host; write one line per node: HOST slots=GPUS")
    return hosts


def world_size(hosts: list[Host]) -> int:
    return sum(h.slots for h in hosts)


def deepspeed_command(
    hostfile: Path,
    config: Path,
    hosts: list[Host],
    *,
    master_addr: Optional[str] = None,
    master_port: int = 29500,
    node_rank: Optional[int] = None,
    deepspeed: str = "deepspeed",
) -> list[str]:
    """The `deepspeed` argv that trains CONFIG on the hostfile's nodes; with node_rank, the command
    for that one node of an ssh-less launch (run it on every node)."""
    if node_rank is not None and not 0 <= node_rank < len(hosts):
        raise HostfileError(f"--node-rank {node_rank}: the hostfile has {len(hosts)} node(s); use 0..{len(hosts) - 1}")
    if node_rank is not None and not master_addr:
        raise HostfileError("--node-rank needs --master-addr (the address of the hostfile's first node)")
    argv = [deepspeed, "--hostfile", str(hostfile), "--master_port", str(master_port)]
    if master_addr:
        argv += ["--master_addr", master_addr]
    if node_rank is not None:
        argv += ["--no_ssh", "--node_rank", str(node_rank)]
    # --no_local_rank: our CLI takes LOCAL_RANK from the environment, not a --local_rank flag.
    return argv + ["--no_local_rank", "--module", "launch", "train", str(config)]


def shell_line(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
