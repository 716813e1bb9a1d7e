"""On a real two-node SLURM cluster started for this module (tests/launch/slurm_cluster.py):
`hiresgan slurm --submit` trains across both nodes; `scancel --signal=USR1` mid-run makes the
ranks checkpoint, rank 0 requeue the job, and the requeued job resume and end exactly where an
undisturbed job ends; a plain multi-task `srun` of `hiresgan train` runs its tasks as the ranks."""

import json
import subprocess
import sys
import time

import pytest
import slurm_cluster
from launchkit import ROOT, TINY, assert_same_final_state, logged_step

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(slurm_cluster.missing_reason() is not None, reason=str(slurm_cluster.missing_reason())),
]

# 32 steps of 8 images on 2 nodes x 1 rank: after step 4 the preemption test has ~28 steps (a few
# seconds) for scancel -> slurmctld -> slurmd -> ranks to deliver SIGUSR1 before the run ends.
RUN = ["train.deterministic=true", "train.kimg=0.256", "train.checkpoint_kimg=10", "train.sample_kimg=10"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    yield started
    started.stop()


def submit(cluster, out_dir, name, pattern, *extra):
    cmd = [
        sys.executable,
        "-m",
        "launch",
        "slurm",
        "configs/digits.yaml",
        *TINY,
        *RUN,
        f"data.urls={pattern}",
        f"run.out_dir={out_dir}",
        f"run.name={name}",
        *extra,
        "--nodes",
        "2",
        "--gpus-per-node",
        "0",
        "--submit",
    ]
    result = subprocess.run(cmd, cwd=ROOT, env=cluster.env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("submitted job ")[1].split(";")[0]


def job_log(run_dir, job_id):
    return (run_dir / "slurm" / f"{run_dir.name}-{job_id}.out").read_text()


@pytest.fixture(scope="module")
def undisturbed(cluster, tmp_path_factory, digit_shards):
    out = tmp_path_factory.mktemp("runs")
    t0 = time.monotonic()
    job_id = submit(cluster, out, "calm", digit_shards[1])
    info = cluster.wait_job(job_id)
    print(f"\nundisturbed 2-node job: {time.monotonic() - t0:.0f} s")
    assert info["JobState"] == "COMPLETED", job_log(out / "calm", job_id)[-3000:]
    return out / "calm", job_id


def test_submitted_job_trains_on_both_nodes_and_exports(undisturbed):
    run_dir, job_id = undisturbed
    log = job_log(run_dir, job_id)
    assert "on node[1-2], rendezvous 127.0.0.1:" in log
    assert (run_dir / "export" / "generator.safetensors").is_file()
    state = json.loads(sorted((run_dir / "checkpoints").glob("step-*"))[-1].joinpath("state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 32
    assert "#SBATCH --signal=USR1@120" in (run_dir / "slurm" / "job.sbatch").read_text()


def test_usr1_checkpoints_requeues_and_the_requeued_job_finishes_like_an_undisturbed_one(
    cluster, undisturbed, tmp_path, digit_shards
):
    job_id = submit(cluster, tmp_path, "preempted", digit_shards[1])
    run_dir = tmp_path / "preempted"
    deadline = time.monotonic() + 300
    while logged_step(run_dir) < 4:
        assert time.monotonic() < deadline and cluster.job(job_id)["JobState"] in ("PENDING", "RUNNING")
        time.sleep(0.3)
    t0 = time.monotonic()
    cluster.run("scancel", "--signal=USR1", job_id)  # what SLURM does --signal seconds before the limit
    while int(cluster.job(job_id).get("Restarts", 0)) < 1:
        assert time.monotonic() - t0 < 120, "the job was not requeued within 120 s of SIGUSR1"
        time.sleep(0.3)
    print(f"\nscancel --signal=USR1 -> checkpoint + requeue in {time.monotonic() - t0:.1f} s")
    info = cluster.wait_job(job_id)
    log = job_log(run_dir, job_id)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", log[-3000:]
    assert "preempted (SIGUSR1) at step" in log and f"requeueing SLURM job {job_id}" in log
    assert f"job {job_id} restart 1 on node[1-2]" in log and "resumed from" in log
    assert_same_final_state(undisturbed[0], run_dir)


def test_a_plain_srun_step_runs_each_task_as_a_rank(cluster, tmp_path, digit_shards):
    """`srun -N 2 -n 2 hiresgan train ...`: no torchrun; the tasks take RANK etc. from SLURM."""
    from launchkit import train_args

    args = train_args(
        digit_shards[1],
        tmp_path,
        "plain",
        "train.kimg=0.032",
        "train.checkpoint_kimg=10",
        "train.sample_kimg=10",
        "launch.nproc_per_node=2",
    )
    result = cluster.run(
        "srun",
        "-N",
        "2",
        "-n",
        "2",
        "--chdir",
        str(ROOT),
        sys.executable,
        "-m",
        "launch",
        *args,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    state = json.loads(
        sorted((tmp_path / "plain" / "checkpoints").glob("step-*"))[-1].joinpath("state.json").read_text()
    )
    # 2 tasks = 2 ranks (not 2 x nproc_per_node spawned ones), 8 images a step.
    assert state["world_size"] == 2 and state["step"] == 4


def test_a_job_rendered_from_the_users_folder_finds_its_files_and_publishes_node_addresses(
    cluster, tmp_path, digit_shards
):
    """Render from a folder outside the checkout with relative data and output paths, submit: the
    checkpoints, the export, the SLURM log and the metrics targets land under that folder, each
    node's targets file names the node's own address (node2 is 127.0.0.2 here), and a real
    Prometheus reading those files scrapes both nodes."""
    import shutil

    from portkit import free_ports

    me = tmp_path / "me"
    shutil.copytree(digit_shards[0], me / "shards")
    port = free_ports()
    prometheus = None
    if shutil.which("prometheus"):  # a central Prometheus, as on a cluster: it scrapes both nodes
        sys.path.insert(0, str(ROOT / "tests" / "monitoring"))
        from promkit import PrometheusServer

        (me / "runs" / "mine" / "prometheus-targets").mkdir(parents=True)  # watched from the start
        prometheus = PrometheusServer(
            tmp_path / "prometheus",
            rule_files=[],
            sd_files=[str(me / "runs" / "mine" / "prometheus-targets" / "*.json")],
        )
    cmd = [
        sys.executable,
        "-m",
        "launch",
        "slurm",
        str(ROOT / "configs" / "digits.yaml"),
        "--nodes",
        "2",
        "--gpus-per-node",
        "0",
        "--submit",
        *TINY,
        "train.kimg=0.032",
        "train.checkpoint_kimg=10",
        "train.sample_kimg=10",
        "data.urls=shards",
        "run.out_dir=runs",
        "run.name=mine",
        f"metrics.port={port}",
        "metrics.final_scrape_wait=4",
    ]  # options before overrides: any order works
    result = subprocess.run(cmd, cwd=me, env=cluster.env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.split("submitted job ")[1].split(";")[0]
    run_dir = me / "runs" / "mine"
    targets = {}
    while cluster.job(job_id)["JobState"] in ("PENDING", "RUNNING", "COMPLETING"):
        for path in (run_dir / "prometheus-targets").glob("rank-*.json"):
            try:
                targets[path.name] = json.loads(path.read_text())[0]
            except (OSError, ValueError):
                pass  # replaced atomically, but it may vanish between glob and read at the end
        time.sleep(0.2)
    info = cluster.wait_job(job_id)
    assert info["JobState"] == "COMPLETED", job_log(run_dir, job_id)[-3000:]
    assert "#SBATCH --cpus-per-task=1" in (run_dir / "slurm" / "job.sbatch").read_text()  # 1 rank x (1 + 0 workers)
    assert (run_dir / "export" / "generator.safetensors").is_file()
    assert sorted((run_dir / "checkpoints").glob("step-*"))
    assert "rendezvous 127.0.0.1:" in job_log(run_dir, job_id)
    assert not (ROOT / "runs" / "mine").exists()
    # torchrun numbers the ranks in rendezvous order: either node may hold rank 0.
    assert sorted(t["targets"][0] for t in targets.values()) == [f"127.0.0.1:{port}", f"127.0.0.2:{port}"], targets
    assert {t["labels"]["slurm_job_id"] for t in targets.values()} == {job_id}
    assert not list((run_dir / "prometheus-targets").glob("*.json"))  # withdrawn at the clean end
    if prometheus is not None:
        try:
            scraped = prometheus.query('max by (instance) (max_over_time(up{job="mine"}[10m]))')
        finally:
            prometheus.close()
        assert {r["metric"]["instance"]: r["value"][1] for r in scraped} == {
            f"127.0.0.1:{port}": "1",
            f"127.0.0.2:{port}": "1",
        }, scraped
