"""Torch threads per rank: the affinity mask and a cgroup CPU quota bound what the local ranks
share, so two ranks in a 2-CPU container do not each start one thread per host core."""

from pathlib import Path

import pytest

from trainer.cpu_budget import cpu_max_texts, rank_threads


@pytest.mark.parametrize(
    "ranks, cpus, cpu_max, expected",
    [
        (2, 2, [], 1),  # this box: 2 ranks on 2 cores
        (1, 2, [], 2),
        (2, 64, ["max 100000"], 32),  # "max": no quota
        (2, 64, ["200000 100000"], 1),  # a 2-CPU quota on a 64-core host
        (1, 64, ["150000 100000"], 1),  # 1.5 CPUs: one thread, not two
        (1, 64, ["400000 100000", "max 100000", "200000 100000"], 2),  # the tightest ancestor wins
        (4, 2, ["200000 100000"], 1),  # more ranks than CPUs: still one each
        (2, 8, ["50000 100000"], 1),  # half a CPU: at least one thread
        (2, 8, ["garbage", "100000", "x 100000", "-1 100000"], 4),  # unreadable quotas are ignored
        (3, 16, [], 5),
    ],
)
def test_rank_threads(ranks, cpus, cpu_max, expected):
    assert rank_threads(ranks, cpus=cpus, cpu_max=cpu_max) == expected


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cpu_max_of_the_cgroup_v2_path_and_its_ancestors(tmp_path):
    root = tmp_path / "cgroup"
    _write(root / "job" / "rank" / "cpu.max", "max 100000\n")
    _write(root / "job" / "cpu.max", "300000 100000\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/job/rank\n")
    texts = cpu_max_texts(root, proc)
    assert texts == ["max 100000", "300000 100000"]  # the root has no cpu.max, as on a host
    assert rank_threads(2, cpus=32, cpu_max=texts) == 1


def test_cpu_max_from_a_cgroup_v1_cpu_controller(tmp_path):
    root = tmp_path / "cgroup"
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    _write(root / "cpu,cpuacct" / "docker" / "cpu.cfs_quota_us", "400000\n")
    _write(root / "cpu,cpuacct" / "docker" / "cpu.cfs_period_us", "100000\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("4:memory:/docker\n3:cpu,cpuacct:/docker\n0::/\n")
    texts = cpu_max_texts(root, proc)
    assert texts == ["400000 100000", "max 100000"]
    assert rank_threads(2, cpus=64, cpu_max=texts) == 2


def test_no_cgroup_files(tmp_path):
    assert cpu_max_texts(tmp_path / "none", tmp_path / "missing") == []
