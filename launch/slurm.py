"""SLURM: render the sbatch script of a run (a pure function of a SlurmJob), and read the
rendezvous of a plain `srun` step from SLURM's environment.

The script runs one torch elastic agent (`torchrun`) per node; the agents meet in a c10d rendezvous
on the allocation's first node and each starts `--nproc-per-node` ranks of `hiresgan train`.
Preemption: SLURM sends SIGUSR1 `--signal` seconds before the time limit (and SIGTERM when it
preempts or cancels); torchrun is told to handle SIGUSR1 too (by default it would die of it and
take its ranks along), forwards it to the ranks, and waits `shutdown_timeout` seconds while they
write a checkpoint. Rank 0 then runs `scontrol requeue`; the requeued job resumes by itself
(`run.resume=auto`). See docs/LAUNCH.md.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from launch.local import FRESH_STORE_ENV, SHUTDOWN_TIMEOUT, SIGNALS_TO_HANDLE
from trainer.preemption import PREEMPTED_EXIT, REQUEUE_ENV
from trainer.telemetry.endpoint import node_address  # the address SLURM reaches a node at

SCRIPT_NAME = "job.sbatch"
DEFAULT_SIGNAL = "USR1@120"
RDZV_PORT_BASE = 29500  # + SLURM_JOB_ID % 1000: jobs sharing a first node do not collide
_SIGNAL_RE = re.compile(r"^(B:)?(SIG)?[A-Z0-9]+(@\d+)?$")
_TIME_RE = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")
_MEM_RE = re.compile(r"^\d+[KMGT]?$")
# Directives the script sets itself from other flags: a --sbatch-arg must not contradict them.
_OWN_DIRECTIVES = (
    "--job-name",
    "--nodes",
    "--ntasks-per-node",
    "--gpus-per-node",
    "--cpus-per-task",
    "--mem",
    "--signal",
    "--requeue",
    "--open-mode",
    "--output",
    "--partition",
    "--time",
    "--account",
)


class SlurmError(ValueError):
    """Bad SLURM input; the message names the flag or variable and how to fix it."""


@dataclass(frozen=True)
class SlurmJob:
    """Everything the sbatch script depends on."""

    run_dir: Path  # absolute; holds config.yaml, checkpoints and slurm/ (shared by all nodes)
    project_root: Path  # where `python -m launch` imports this code from
    python: str  # interpreter on the compute nodes
    job_name: str
    nodes: int
    procs_per_node: int  # ranks per node
    gpus_per_node: int = 0  # GPUs requested per node (0: CPU nodes, no --gpus-per-node line)
    partition: Optional[str] = None
    time: Optional[str] = None  # SLURM time limit, e.g. 2-00:00:00
    account: Optional[str] = None
    cpus_per_task: Optional[int] = None  # cores per node's task (the agent, its ranks and their loader workers)
    mem: Optional[str] = None  # memory per node, SLURM's form: 64G, 500M, 0 (all of the node's)
    sbatch_args: tuple[str, ...] = ()  # any other directive, e.g. --qos=high, --constraint=a100, --exclusive
    signal: str = DEFAULT_SIGNAL  # SIG@SECONDS before the time limit
    max_restarts: int = 0  # elastic restarts of a node's ranks after a crash
    shutdown_timeout: int = SHUTDOWN_TIMEOUT
    rdzv_port_base: int = RDZV_PORT_BASE
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node


def validate(job: SlurmJob) -> SlurmJob:
    def bad(flag: str, message: str) -> None:
        raise SlurmError(f"{flag}: {message}")

    if job.nodes < 1:
        bad("--nodes", f"got {job.nodes}; must be >= 1")
    if job.procs_per_node < 1:
        bad("--gpus-per-node/--procs-per-node", f"got {job.procs_per_node} ranks per node; must be >= 1")
    if job.gpus_per_node < 0:
        bad("--gpus-per-node", f"got {job.gpus_per_node}; must be >= 0 (0 for CPU nodes)")
    if job.gpus_per_node and job.procs_per_node != job.gpus_per_node:
        bad(
            "--procs-per-node",
            f"got {job.procs_per_node} with --gpus-per-node {job.gpus_per_node}; "
            "on GPU nodes every rank owns one GPU, so leave --procs-per-node out",
        )
    if not _SIGNAL_RE.match(job.signal):
        bad("--signal", f"got {job.signal!r}; use SLURM's form SIG@SECONDS, e.g. USR1@120")
    if job.time is not None and not _TIME_RE.match(job.time):
        bad("--time", f"got {job.time!r}; use SLURM's form [D-]HH:MM:SS or minutes, e.g. 2-00:00:00")
    if job.cpus_per_task is not None and job.cpus_per_task < 1:
        bad("--cpus-per-task", f"got {job.cpus_per_task}; must be >= 1")
    if job.mem is not None and not _MEM_RE.match(job.mem):
        bad("--mem", f"got {job.mem!r}; use SLURM's form: a number with an optional K/M/G/T suffix, e.g. 64G")
    for arg in job.sbatch_args:
        name = arg.split("=", 1)[0]
        if not arg.startswith("-") or any(c in arg for c in "\n\r"):
            bad("--sbatch-arg", f"got {arg!r}; pass one sbatch option as it would follow #SBATCH, e.g. --qos=high")
        if name in _OWN_DIRECTIVES:
            bad("--sbatch-arg", f"got {arg!r}; {name} has its own flag of `hiresgan slurm` (use that)")
    if not 1024 <= job.rdzv_port_base <= 64535:
        bad("--rdzv-port-base", f"got {job.rdzv_port_base}; must be in 1024..64535 (1000 ports are used above it)")
    for name in ("job_name", "partition", "account"):
        value = getattr(job, name)
        if value is not None and (not value or any(c.isspace() for c in value)):
            bad(f"--{name.replace('_', '-')}", f"got {value!r}; must be non-empty without spaces")
    return job


def _sbatch_lines(job: SlurmJob) -> list[str]:
    lines = [f"--job-name={job.job_name}", f"--nodes={job.nodes}", "--ntasks-per-node=1"]
    if job.gpus_per_node:
        lines.append(f"--gpus-per-node={job.gpus_per_node}")
    if job.cpus_per_task:
        lines.append(f"--cpus-per-task={job.cpus_per_task}")
    if job.mem:
        lines.append(f"--mem={job.mem}")
    for flag, value in (("partition", job.partition), ("time", job.time), ("account", job.account)):
        if value:
            lines.append(f"--{flag}={value}")
    lines += [
        f"--signal={job.signal}",
        "--requeue",
        "--open-mode=append",
        f"--output={job.run_dir}/slurm/%x-%j.out",
        *job.sbatch_args,
    ]
    return [f"#SBATCH {line}" for line in lines]


def render_sbatch(job: SlurmJob) -> str:
    """The sbatch script of a job: a pure function (no clock, no environment), tested as such."""
    validate(job)
    q = shlex.quote
    config = job.run_dir / "config.yaml"
    torchrun = [
        f"{q(job.python)} -m torch.distributed.run",
        f"--nnodes={job.nodes} --nproc-per-node={job.procs_per_node}",
        '--rdzv-backend=c10d --rdzv-endpoint="$head_addr:$rdzv_port" --rdzv-id="hiresgan-$SLURM_JOB_ID"',
        f"--max-restarts={job.max_restarts} --shutdown-timeout={job.shutdown_timeout}",
        f"--signals-to-handle={SIGNALS_TO_HANDLE}",
        f"-m launch train {q(str(config))}",
    ]
    env = {
        "PYTHONPATH": f"{job.project_root}${{PYTHONPATH:+:$PYTHONPATH}}",
        REQUEUE_ENV: "1",
        **FRESH_STORE_ENV,
        **job.extra_env,
    }
    gpu_check = []
    if job.gpus_per_node:
        gpu_check = [
            "# The allocation must match the config: one GPU per rank.",
            f'if [ "${{SLURM_GPUS_ON_NODE:-0}}" -lt {job.gpus_per_node} ]; then',
            f'  echo "hiresgan: error: --gpus-per-node {job.gpus_per_node} but SLURM allocated '
            f'${{SLURM_GPUS_ON_NODE:-0}} GPU(s) per node; fix the partition or the flag" >&2',
            "  exit 2",
            "fi",
        ]
    return "\n".join(
        [
            "#!/bin/bash",
            f"# Rendered by `hiresgan slurm` for {job.run_dir}: {job.nodes} node(s) x {job.procs_per_node} rank(s).",
            "# Submit with `sbatch` (or `hiresgan slurm ... --submit`); re-render rather than edit.",
            *_sbatch_lines(job),
            "set -euo pipefail",
            f"cd {q(str(job.project_root))}",
            *[f'export {k}="{v}"' if k == "PYTHONPATH" else f"export {k}={q(str(v))}" for k, v in env.items()],
            *gpu_check,
            "# Rendezvous on the first node of the allocation, by the address SLURM reaches it at.",
            'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            "head_addr=$(scontrol show node \"$head_node\" | sed -n 's/.*NodeAddr=\\([^ ]*\\).*/\\1/p')",
            "head_addr=${head_addr:-$head_node}",
            "# A new port after each requeue: the last run's store socket may linger on the first node.",
            f"rdzv_port=$(( {job.rdzv_port_base} + (SLURM_JOB_ID + 97 * ${{SLURM_RESTART_COUNT:-0}}) % 1000 ))",
            'echo "hiresgan: job $SLURM_JOB_ID restart ${SLURM_RESTART_COUNT:-0} on $SLURM_JOB_NODELIST,'
            ' rendezvous $head_addr:$rdzv_port"',
            "rc=0",
            # srun repeats --cpus-per-task: Slurm 22.05-23.02 does not pass the batch job's value on to its steps.
            f"srun --nodes={job.nodes} --ntasks-per-node=1"
            + (f" --cpus-per-task={job.cpus_per_task}" if job.cpus_per_task else "")
            + " --kill-on-bad-exit=0 \\",
            "  " + " \\\n  ".join(torchrun) + " || rc=$?",
            f'if [ "$rc" -eq {PREEMPTED_EXIT} ]; then',
            '  echo "hiresgan: preempted; the job was requeued by rank 0 and resumes from its checkpoint"',
            "fi",
            'exit "$rc"',
            "",
        ]
    )


# ---------------------------------------------------------------------------------- inside a step


def in_srun_step(environ: Mapping[str, str]) -> bool:
    """True inside an `srun` step of several tasks (each task one rank). The batch script itself
    has no SLURM_STEP_ID; torchrun-launched ranks carry RANK and are handled before this."""
    return "SLURM_STEP_ID" in environ and int(environ.get("SLURM_NTASKS", "1")) > 1


def _first_tasks_per_node(value: str) -> int:
    # SLURM_TASKS_PER_NODE looks like "2(x3),1": the local count of the first nodes.
    return int(value.split(",")[0].split("(")[0])


def first_node(nodelist: str) -> str:
    out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=30)
    if out.returncode != 0 or not out.stdout.split():
        raise SlurmError(f"SLURM_JOB_NODELIST={nodelist!r}: `scontrol show hostnames` failed: {out.stderr.strip()}")
    return out.stdout.split()[0]


def rendezvous_from_slurm(
    environ: Mapping[str, str], *, head_address: Optional[str] = None, port_base: int = RDZV_PORT_BASE
) -> dict[str, str]:
    """torch.distributed's environment for one task of a multi-task srun step."""
    try:
        procid, ntasks = int(environ["SLURM_PROCID"]), int(environ["SLURM_NTASKS"])
        localid, job_id = int(environ["SLURM_LOCALID"]), int(environ["SLURM_JOB_ID"])
        nodelist = environ.get("SLURM_STEP_NODELIST") or environ["SLURM_JOB_NODELIST"]
    except KeyError as exc:
        raise SlurmError(f"inside an srun step but {exc.args[0]} is not set; run the step with srun") from None
    local_world = _first_tasks_per_node(
        environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE", "1")
    )
    head = head_address or node_address(first_node(nodelist))
    return {
        "RANK": str(procid),
        "WORLD_SIZE": str(ntasks),
        "LOCAL_RANK": str(localid),
        "LOCAL_WORLD_SIZE": str(local_world),
        "MASTER_ADDR": head,
        "MASTER_PORT": str(port_base + job_id % 1000),
    }


def adopt_srun_step(environ=None) -> bool:
    """Inside a multi-task srun step, set RANK, WORLD_SIZE, ... from SLURM's variables so that the
    process runs as that rank (no second spawn). False (nothing changed) elsewhere."""
    import os

    environ = os.environ if environ is None else environ
    if "RANK" in environ or not in_srun_step(environ):
        return False
    environ.update(rendezvous_from_slurm(environ))
    return True
