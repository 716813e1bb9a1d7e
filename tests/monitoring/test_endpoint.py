"""Where a rank's /metrics endpoint listens: a default port outside the exporters' range, a taken
port that moves on (the targets file names the port really served) instead of killing the rank,
and metrics.bind=auto binding the node's address under SLURM (the address in the targets file).
Single process, no training: fast."""

import json
import os
import socket
import stat
import subprocess
import urllib.request
from pathlib import Path

import pytest
from portkit import free_ports
from prometheus_client import CollectorRegistry

from trainer.config import MetricsConfig
from trainer.telemetry import endpoint as rank_endpoint

ROOT = Path(__file__).resolve().parents[2]
IDENTITY = {"job": "unit", "rank": "3", "local_rank": "1", "node": "host-a", "slurm_job_id": ""}
# Defaults of exporters that share GPU nodes with training ranks (Prometheus's allocations wiki).
EXPORTER_PORTS = {
    9100: "node",
    9400: "dcgm",
    9445: "nvidia-gpu",
    9256: "process",
    9835: "nvidia_smi",
    9464: "opentelemetry",
    8080: "cadvisor",
    9090: "prometheus",
    9091: "pushgateway",
}


def target(tmp_path, rank="3"):
    return json.loads((tmp_path / "prometheus-targets" / f"rank-{int(rank):05d}.json").read_text())[0]


def test_default_port_is_outside_the_exporter_range_and_documented():
    port = MetricsConfig().port
    assert not 9100 <= port <= 9999 and port not in EXPORTER_PORTS, port
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert 1024 < port < low  # never handed out as a client's source port
    assert f"`{port}`" in (ROOT / "docs" / "MONITORING.md").read_text()
    tracked = subprocess.run(["git", "ls-files", "configs/*.yaml"], cwd=ROOT, capture_output=True, text=True).stdout
    for config in [ROOT / name for name in tracked.split()]:
        assert "port: 9400" not in config.read_text(), f"{config.name} still asks for DCGM's port"


def test_a_taken_port_moves_on_by_the_stride_and_the_target_says_so(tmp_path):
    base = free_ports(3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base))
        taken.listen()
        endpoint = rank_endpoint.RankEndpoint(
            CollectorRegistry(), run_dir=tmp_path, port=base, bind="127.0.0.1", identity=IDENTITY, port_stride=2
        )
        try:
            assert endpoint.port == base + 2  # base + 1 belongs to local rank 1
            assert target(tmp_path)["targets"] == [f"127.0.0.1:{base + 2}"]
            urllib.request.urlopen(f"http://127.0.0.1:{base + 2}/metrics", timeout=5).read()
        finally:
            endpoint.close()


def test_only_a_port_range_all_taken_is_an_error_naming_the_key(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(rank_endpoint.MetricsError, match=rf"cannot bind 127.0.0.1:{port}.*metrics.port"):
            rank_endpoint.serve(CollectorRegistry(), port=port, bind="127.0.0.1", attempts=1)


def fake_scontrol(tmp_path, node_addr: str) -> dict:
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "scontrol"
    script.write_text(f'#!/bin/sh\necho "NodeName=$3 Arch=x86_64 NodeAddr={node_addr} NodeHostName=h"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}"}


def test_auto_bind_is_loopback_alone_and_the_node_address_under_slurm(tmp_path, monkeypatch):
    assert rank_endpoint.resolve_bind("auto", multi_node=False, environ={}) == "127.0.0.1"
    assert rank_endpoint.resolve_bind("10.1.2.3", multi_node=True, environ={"SLURM_JOB_ID": "7"}) == "10.1.2.3"
    env = fake_scontrol(tmp_path, "127.0.0.2")  # any 127/8 address binds on Linux: a second "node"
    monkeypatch.setenv("PATH", env["PATH"])
    slurm = {"SLURM_JOB_ID": "7", "SLURMD_NODENAME": "node2"}
    bind = rank_endpoint.resolve_bind("auto", multi_node=True, environ=slurm)
    assert bind == "127.0.0.2"
    assert rank_endpoint.resolve_bind("auto", multi_node=False, environ=slurm) == "127.0.0.2"  # one-node SLURM job
    port = free_ports()
    endpoint = rank_endpoint.RankEndpoint(
        CollectorRegistry(), run_dir=tmp_path, port=port, bind=bind, identity=IDENTITY
    )
    try:
        assert target(tmp_path)["targets"] == [f"127.0.0.2:{port}"]  # what a central Prometheus scrapes
        urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=5).read()
    finally:
        endpoint.close()
