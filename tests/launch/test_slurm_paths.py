"""`hiresgan slurm` run from the user's own folder, outside the checkout: relative run.out_dir and
data.urls are anchored to that folder at render time (the script cds into the checkout), the
resources follow the config (--cpus-per-task from ranks x (1 + loader workers), repeated on srun;
--mem; any other directive through --sbatch-arg), and --dry-run checks the shards like a real
render. In-process, no SLURM needed: fast."""

import shutil
import subprocess

import pytest
from launchkit import ROOT, TINY

from launch.cli import main
from launch.paths import absolute_spec
from trainer.config import load_run_config


@pytest.fixture
def user_folder(tmp_path, digit_shards, monkeypatch):
    """A user's folder with its shards under ./shards, the current directory of the test."""
    folder = tmp_path / "me"
    shutil.copytree(digit_shards[0], folder / "shards")
    monkeypatch.chdir(folder)
    return folder


def render(*extra, name="rel"):
    return main(
        [
            "slurm",
            str(ROOT / "configs" / "digits.yaml"),
            *TINY,
            "data.urls=shards",
            "run.out_dir=runs",
            f"run.name={name}",
            "--nodes",
            "2",
            "--gpus-per-node",
            "0",
            "--procs-per-node",
            "2",
            *extra,
        ]
    )


def test_relative_paths_are_anchored_to_the_callers_folder(user_folder, capsys):
    assert render() == 0
    run_dir = user_folder / "runs" / "rel"
    script = (run_dir / "slurm" / "job.sbatch").read_text()
    assert f"#SBATCH --output={run_dir}/slurm/%x-%j.out" in script.splitlines()
    assert f"cd {ROOT}" in script and f"-m launch train {run_dir}/config.yaml" in script
    cfg = load_run_config(run_dir)
    assert cfg.run.out_dir == str(user_folder / "runs") and cfg.data.urls == str(user_folder / "shards")
    assert not (ROOT / "runs" / "rel").exists()
    # Remote items and absolute paths stay; '~' is the home of every node, not the caller's folder.
    spec = absolute_spec("a/shard-{0..3}.tar :: /abs/x.tar https://h/m.json::pipe:cat b.tar", user_folder)
    assert spec.split("::") == [
        f"{user_folder}/a/shard-{{0..3}}.tar",
        "/abs/x.tar",
        "https://h/m.json",
        "pipe:cat b.tar",
    ]


def test_cpus_per_task_follows_ranks_and_workers_and_srun_repeats_it(user_folder):
    assert render("data.workers=3") == 0  # 2 ranks x (1 + 3 workers)
    script = (user_folder / "runs" / "rel" / "slurm" / "job.sbatch").read_text().splitlines()
    assert "#SBATCH --cpus-per-task=8" in script
    assert any(line.startswith("srun ") and "--cpus-per-task=8" in line for line in script), script
    assert render("--cpus-per-task", "5", name="given") == 0
    assert "#SBATCH --cpus-per-task=5" in (user_folder / "runs" / "given" / "slurm" / "job.sbatch").read_text()


def test_mem_and_any_other_directive(user_folder, capsys):
    assert (
        render(
            "--mem",
            "64G",
            "--sbatch-arg=--qos=high",
            "--sbatch-arg=--constraint=a100",
            "--sbatch-arg=--exclusive",
            "--sbatch-arg=--reservation=demo",
        )
        == 0
    )
    script = (user_folder / "runs" / "rel" / "slurm" / "job.sbatch").read_text()
    lines = script.splitlines()
    for line in ("--mem=64G", "--qos=high", "--constraint=a100", "--exclusive", "--reservation=demo"):
        assert f"#SBATCH {line}" in lines
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    capsys.readouterr()
    assert render("--mem", "lots") == 2 and "--mem" in capsys.readouterr().err
    assert render("--sbatch-arg=--nodes=4") == 2 and "--sbatch-arg" in capsys.readouterr().err
    assert render("--sbatch-arg=qos high") == 2 and "--sbatch-arg" in capsys.readouterr().err


def test_dry_run_checks_the_shards_like_a_real_render(user_folder, capsys):
    capsys.readouterr()
    assert render("--dry-run") == 0 and "#!/bin/bash" in capsys.readouterr().out
    assert not (user_folder / "runs").exists()  # a dry run writes nothing
    code = main(
        [
            "slurm",
            str(ROOT / "configs" / "digits.yaml"),
            *TINY,
            "data.urls=missing/shard-{0..3}.tar",
            "run.out_dir=runs",
            "--nodes",
            "2",
            "--gpus-per-node",
            "0",
            "--dry-run",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "data.urls" in err and "not found" in err, err
