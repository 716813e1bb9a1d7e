"""How many torch threads a training rank may use: the CPUs this process may run on (its affinity
mask), capped by a cgroup CPU quota, shared by the node's local ranks. os.cpu_count() sees the
host's CPUs, which in a container with a quota oversubscribes every rank."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def rank_threads(local_world_size: int, *, cpus: int, cpu_max: Sequence[str] = ()) -> int:
    """Torch threads for one of `local_world_size` ranks sharing this process's CPUs.

    `cpus`: how many CPUs the affinity mask allows (os.sched_getaffinity); `cpu_max`: the cgroup
    v2 `cpu.max` texts ("QUOTA PERIOD" in microseconds, QUOTA "max" for none) of this process's
    cgroup and its ancestors. A quota of 1.5 CPUs is 1 CPU here: a rank thread that waits for
    the quota's next period is worse than one thread fewer. Every rank gets at least 1."""
    budget = max(1, cpus)
    for text in cpu_max:
        fields = text.split()
        if len(fields) != 2 or fields[0] == "max":
            continue
        try:
            quota, period = float(fields[0]), float(fields[1])
        except ValueError:
            continue
        if quota > 0 and period > 0:
            budget = min(budget, max(1, int(quota // period)))
    return max(1, budget // max(1, local_world_size))


def cpu_max_texts(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> list[str]:
    """The `cpu.max` of this process's cgroup and of each ancestor (cgroup v2; the quota of a
    cgroup v1 `cpu` controller is translated to the same form); [] where there is none."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    texts = []
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        rel = Path(path.strip().lstrip("/"))
        if hierarchy == "0" and not controllers:  # v2
            base, names = root, ("cpu.max",)
        elif "cpu" in controllers.split(","):  # v1: cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us
            base, names = root / controllers, ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        for folder in [base / rel, *(base / parent for parent in rel.parents)]:
            try:
                values = [(folder / name).read_text().strip() for name in names]
            except OSError:
                continue
            if len(values) == 2:  # v1 -> v2's form
                values = [f"{'max' if values[0] == '-1' else values[0]} {values[1]}"]
            texts.append(values[0])
    return texts
