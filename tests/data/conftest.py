"""Fixtures for the loader tests."""

from pathlib import Path

import pytest

from datakit import ShardServer


@pytest.fixture
def serve():
    """serve(folder) -> a running ShardServer for that folder (shut down after the test)."""
    servers = []

    def start(folder: Path) -> ShardServer:
        servers.append(ShardServer(folder))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
