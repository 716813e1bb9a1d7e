"""A real two-node SLURM cluster on this machine, for tests (munge + slurmctld + two slurmd, see docs/LAUNCH.md).

slurmctld plus two slurmd daemons ("node1" at 127.0.0.1, "node2" at 127.0.0.2) with their own config,
ports, state and logs in a temporary folder; munged is shared with the machine (started when it
is not running). Clients reach the cluster through `SLURM_CONF` in `Cluster.env`.

Also runnable by hand: `python tests/launch/slurm_cluster.py DIR` starts one and prints the
`export SLURM_CONF=...` line (stop it with `kill $(cat DIR/*.pid)`).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from portkit import free_ports

BINARIES = ("slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "scancel", "munged", "munge")
NODES = ("node1", "node2")
NODE_ADDRS = ("127.0.0.1", "127.0.0.2")


def missing_reason() -> Optional[str]:
    """Why a cluster cannot be started here (None when it can)."""
    absent = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if absent:
        return (
            f"SLURM binaries not found: {', '.join(absent)}; install them with "
            "`apt-get install -y slurm-wlm munge` (.ci/run does this on CI)"
        )
    if os.geteuid() != 0:
        return "starting slurmd needs root (it runs job steps as the submitting user)"
    if not Path("/etc/munge/munge.key").is_file():
        return "/etc/munge/munge.key is missing; reinstall munge or run `mungekey --create`"
    return None


def _munge_works() -> bool:
    try:
        token = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        return (
            token.returncode == 0
            and subprocess.run(["unmunge"], input=token.stdout, capture_output=True, timeout=10).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_munged() -> None:
    if _munge_works():
        return
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True, timeout=30)
    deadline = time.monotonic() + 20
    while not _munge_works():
        if time.monotonic() > deadline:
            raise RuntimeError("munged started but `munge -n | unmunge` still fails; see /var/log/munge/munged.log")
        time.sleep(0.2)


def render_conf(folder: Path, *, ctld_port: int, node_ports: tuple[int, int]) -> str:
    host = socket.gethostname()
    # Each node at its own loopback address (any 127/8 address binds on Linux), so what a node
    # binds and advertises (metrics.bind=auto) can be told apart from the other node's.
    nodes = "\n".join(
        f"NodeName={name} NodeHostname={host} NodeAddr={addr} Port={port} CPUs=1 State=UNKNOWN"
        for name, addr, port in zip(NODES, NODE_ADDRS, node_ports)
    )
    return f"""ClusterName=hiresgantest
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# Requeued jobs become eligible cred_expire+1 s later (default 120 s): keep tests short.
AuthInfo=cred_expire=10
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool-%n
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd-%n.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
MpiDefault=none
KillWait=30
InactiveLimit=0
MinJobAge=600
{nodes}
PartitionName=debug Nodes={",".join(NODES)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""


@dataclass
class Cluster:
    folder: Path
    env: dict

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, Restarts, ExitCode, ...)."""
        out = self.run("scontrol", "show", "job", "-o", job_id).stdout
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def wait_job(
        self, job_id: str, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL"), timeout: float = 600
    ) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.job(job_id)
            if info.get("JobState") in states:
                return info
            time.sleep(1)
        raise AssertionError(f"job {job_id} not in {states} after {timeout} s: {self.job(job_id)}")

    def stop(self) -> None:
        self.run("scancel", "--full", "--user=root", check=False)
        time.sleep(1)
        for pid_file in sorted(self.folder.glob("*.pid")):
            try:
                os.kill(int(pid_file.read_text().split()[0]), 15)
            except (OSError, ValueError):
                pass


def start(folder: Path, timeout: float = 60) -> Cluster:
    ensure_munged()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "state").mkdir(exist_ok=True)
    conf = folder / "slurm.conf"
    conf.write_text(render_conf(folder, ctld_port=(base := free_ports(3)), node_ports=(base + 1, base + 2)))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run(["slurmctld", "-i"], env=env, check=True, timeout=30)
    for node in NODES:
        subprocess.run(["slurmd", "-N", node], env=env, check=True, timeout=30)
    cluster = Cluster(folder, env)
    deadline = time.monotonic() + timeout
    while True:
        states = cluster.run("sinfo", "-h", "-N", "-o", "%N %t", check=False).stdout.split("\n")
        idle = [line for line in states if line.strip().endswith("idle")]
        if len(idle) == len(NODES):
            return cluster
        if time.monotonic() > deadline:
            cluster.stop()
            raise RuntimeError(f"SLURM nodes not idle after {timeout} s: {states}; see {folder}/*.log")
        time.sleep(0.5)


if __name__ == "__main__":
    started = start(Path(sys.argv[1]).resolve())
    print(f"export SLURM_CONF={started.env['SLURM_CONF']}")
