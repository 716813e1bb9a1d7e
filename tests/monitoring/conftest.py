"""Fixtures of the monitoring tests (helpers live in promkit.py, importable by name)."""

import shutil
import sys
from pathlib import Path

import pytest

# --import-mode=importlib does not put test folders on sys.path; the test modules here import
# promkit by name (pyproject's `pythonpath` would do the same for every test folder at once).
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from promkit import PrometheusServer  # noqa: E402


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
