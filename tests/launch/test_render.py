"""Pure pieces of the launchers, no processes: sbatch rendering for many shapes, SLURM environment
to rendezvous, hostfile parsing and the deepspeed command, and the CLI's bad-input messages."""

import socket
import subprocess
import sys

import pytest
from launchkit import ROOT

from launch.hostfile import HostfileError, deepspeed_command, parse_hostfile
from launch.slurm import SlurmError, SlurmJob, in_srun_step, render_sbatch, rendezvous_from_slurm


def job(tmp_path, **kw):
    base = dict(
        run_dir=tmp_path / "run",
        project_root=ROOT,
        python="/usr/bin/python3",
        job_name="r",
        nodes=2,
        procs_per_node=4,
        gpus_per_node=4,
    )
    return SlurmJob(**{**base, **kw})


@pytest.mark.parametrize("nodes", [1, 2, 3, 8, 64])
@pytest.mark.parametrize("gpus", [0, 1, 4, 8])
def test_sbatch_for_many_shapes(tmp_path, nodes, gpus):
    procs = gpus or 2
    script = render_sbatch(job(tmp_path, nodes=nodes, procs_per_node=procs, gpus_per_node=gpus))
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert f"#SBATCH --nodes={nodes}" in lines and "#SBATCH --ntasks-per-node=1" in lines
    assert ("#SBATCH --gpus-per-node=%d" % gpus in lines) == bool(gpus)
    assert "#SBATCH --signal=USR1@120" in lines and "#SBATCH --requeue" in lines
    assert f"srun --nodes={nodes} --ntasks-per-node=1 --kill-on-bad-exit=0 \\" in lines
    assert f"  --nnodes={nodes} --nproc-per-node={procs} \\" in lines
    assert "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1" in script
    assert f"-m launch train {tmp_path}/run/config.yaml" in script and "export HIRESGAN_REQUEUE=1" in lines
    assert ("SLURM_GPUS_ON_NODE" in script) == bool(gpus)
    # bash accepts it
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert render_sbatch(job(tmp_path, nodes=nodes, procs_per_node=procs, gpus_per_node=gpus)) == script  # pure


def test_sbatch_optional_lines(tmp_path):
    script = render_sbatch(
        job(
            tmp_path,
            partition="gpu",
            time="2-00:00:00",
            account="lab",
            cpus_per_task=32,
            signal="B:USR1@300",
            max_restarts=3,
        )
    )
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=2-00:00:00",
        "#SBATCH --account=lab",
        "#SBATCH --cpus-per-task=32",
        "#SBATCH --signal=B:USR1@300",
    ):
        assert line in script.splitlines()
    assert "--max-restarts=3" in script
    assert "#SBATCH --partition" not in render_sbatch(job(tmp_path))


@pytest.mark.parametrize(
    "kw, flag",
    [
        (dict(nodes=0), "--nodes"),
        (dict(signal="USR1 120"), "--signal"),
        (dict(time="two days"), "--time"),
        (dict(procs_per_node=2, gpus_per_node=4), "--procs-per-node"),
        (dict(partition="a b"), "--partition"),
        (dict(gpus_per_node=-1, procs_per_node=1), "--gpus-per-node"),
        (dict(rdzv_port_base=80), "--rdzv-port-base"),
    ],
)
def test_bad_slurm_job_names_the_flag(tmp_path, kw, flag):
    with pytest.raises(SlurmError, match=flag):
        render_sbatch(job(tmp_path, **kw))


def test_rendezvous_from_an_srun_step():
    env = {
        "SLURM_STEP_ID": "0",
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "8",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_ID": "123456",
        "SLURM_STEP_NODELIST": "gpu[01-04]",
        "SLURM_STEP_TASKS_PER_NODE": "2(x4)",
    }
    assert in_srun_step(env) and not in_srun_step({"SLURM_JOB_ID": "1"})  # the batch script is no step
    assert not in_srun_step({**env, "SLURM_NTASKS": "1"})
    got = rendezvous_from_slurm(env, head_address="10.0.0.1")
    assert got == {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": str(29500 + 456),
    }
    with pytest.raises(SlurmError, match="SLURM_PROCID"):
        rendezvous_from_slurm({k: v for k, v in env.items() if k != "SLURM_PROCID"}, head_address="x")


def test_hostfile_parsing_and_command(tmp_path):
    hf = tmp_path / "hostfile"
    hf.write_text("# cluster\nworker-1 slots=8\n\nworker-2 slots=8  # second\n")
    hosts = parse_hostfile(hf)
    assert [(h.name, h.slots) for h in hosts] == [("worker-1", 8), ("worker-2", 8)]
    argv = deepspeed_command(hf, tmp_path / "config.yaml", hosts, master_addr="10.0.0.1", master_port=1234)
    assert argv == [
        "deepspeed",
        "--hostfile",
        str(hf),
        "--master_port",
        "1234",
        "--master_addr",
        "10.0.0.1",
        "--no_local_rank",
        "--module",
        "launch",
        "train",
        str(tmp_path / "config.yaml"),
    ]
    argv = deepspeed_command(hf, tmp_path / "c.yaml", hosts, master_addr="10.0.0.1", node_rank=1)
    assert argv[argv.index("--no_ssh") : argv.index("--no_ssh") + 3] == ["--no_ssh", "--node_rank", "1"]
    with pytest.raises(HostfileError, match="--node-rank 2"):
        deepspeed_command(hf, tmp_path / "c.yaml", hosts, master_addr="a", node_rank=2)
    with pytest.raises(HostfileError, match="--master-addr"):
        deepspeed_command(hf, tmp_path / "c.yaml", hosts, node_rank=0)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("node1 slot=1\n", ":1: 'node1 slot=1' is not 'HOST slots=N'"),
        ("a slots=1\na slots=2\n", ":2: host 'a' is listed twice"),
        ("a slots=0\n", ":1: slots=0"),
        ("# nothing\n", "names no host"),
    ],
)
def test_bad_hostfile_names_file_and_line(tmp_path, text, needle):
    hf = tmp_path / "hf"
    hf.write_text(text)
    with pytest.raises(HostfileError) as info:
        parse_hostfile(hf)
    assert str(hf) in str(info.value) and needle in str(info.value)


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "launch", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow  # seven CLI processes (each imports torch and DeepSpeed)
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, digit_shards):
    _, pattern = digit_shards
    common = [
        "configs/digits.yaml",
        f"data.urls={pattern}",
        "data.prepare=none",
        f"run.out_dir={tmp_path}",
        "run.name=x",
    ]
    cases = [
        (["slurm", *common, "--nodes", "3", "--gpus-per-node", "4"], "'train.batch_size': 32 does not divide"),
        (["slurm", *common, "--nodes", "2", "--signal", "soon"], "--signal: got 'soon'"),
        (["slurm", *common, "--nodes", "2", "--gpus-per-node", "2", "--procs-per-node", "4"], "--procs-per-node 4"),
        (["hostfile", *common, "--hostfile", tmp_path / "none"], "--hostfile"),
    ]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        cases += [
            (["train", *common, f"launch.master_port={taken}"], "'launch.master_port': cannot listen on"),
            (
                ["train", *common, "launch.master_addr=10.255.255.1", "launch.master_port=29999"],
                "'launch.master_addr': cannot listen on 10.255.255.1",
            ),
        ]
        for args, needle in cases:
            result = _cli(*args)
            lines = [line for line in result.stderr.splitlines() if line.strip() and "WARNING" not in line]
            assert result.returncode == 2 and len(lines) == 1 and needle in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []
    dry = _cli("slurm", *common, "--nodes", "2", "--gpus-per-node", "8", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("#!/bin/bash") and "--nproc-per-node=8" in dry.stdout
    assert list(tmp_path.iterdir()) == []  # --dry-run writes nothing


def test_the_script_refuses_an_allocation_with_fewer_gpus_than_asked(tmp_path):
    script = tmp_path / "job.sbatch"
    script.write_text(render_sbatch(job(tmp_path, nodes=2, procs_per_node=4, gpus_per_node=4)))
    env = {"PATH": "/usr/bin:/bin", "SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_GPUS_ON_NODE": "2"}
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "hiresgan: error: --gpus-per-node 4 but SLURM allocated 2 GPU(s) per node; fix the partition or the flag"
    )


def test_the_shipped_example_is_what_the_renderer_writes():
    from pathlib import Path

    example = (ROOT / "launch" / "examples" / "ffhq256-4x8.sbatch").read_text().splitlines()
    rendered = render_sbatch(
        SlurmJob(
            run_dir=Path("/shared/runs/ffhq256"),
            project_root=Path("/opt/hiresgan"),
            python="/opt/hiresgan/.venv/bin/python",
            job_name="ffhq256",
            nodes=4,
            procs_per_node=8,
            gpus_per_node=8,
            partition="gpu",
            time="2-00:00:00",
            account="mylab",
        )
    ).splitlines()
    assert example[0] == rendered[0] and example[5:] == rendered[1:], "re-render launch/examples/ffhq256-4x8.sbatch"
