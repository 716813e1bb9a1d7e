"""Fixtures of the monitoring tests (helpers live in promkit.py, importable by name)."""

import shutil
from pathlib import Path

import pytest
from promkit import PrometheusServer


@pytest.fixture(scope="module")
def start_prometheus():
    """Factory: start_prometheus(workdir, sd_files=[...], rule_files=[...]) -> PrometheusServer."""
    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus binary is not installed (Debian: apt-get install prometheus; CI installs it)")
    servers = []

    def start(workdir: Path, *, sd_files, rule_files=()):
        server = PrometheusServer(workdir, sd_files=list(sd_files), rule_files=list(rule_files))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
