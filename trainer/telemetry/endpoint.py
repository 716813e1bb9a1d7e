"""This rank's /metrics HTTP endpoint and its Prometheus file-service-discovery targets file."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Mapping

from prometheus_client import CollectorRegistry, start_http_server

from trainer.telemetry.catalog import TARGETS_DIR, MetricsError

log = logging.getLogger(__name__)


# Ports tried before giving up: port, port + stride, port + 2 stride, ... (stride = ranks on the
# node, so a rank that moves on never takes the port a sibling rank was given).
PORT_ATTEMPTS = 64


def serve(
    registry: CollectorRegistry, *, port: int, bind: str, stride: int = 1, attempts: int = PORT_ATTEMPTS
) -> tuple[object, int]:
    """Start this rank's HTTP endpoint: (server, port it serves on). A taken port (another exporter,
    another job on the node) is not fatal: the next free one of port + k * stride is used and
    logged. Only when none is free, or the address itself cannot be bound, one clear error names
    metrics.port / metrics.bind."""
    tried = []
    for k in range(max(1, attempts)):
        candidate = port + k * max(1, stride)
        if candidate > 65535:
            break
        try:
            server, _thread = start_http_server(candidate, addr=bind, registry=registry)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise MetricsError(
                    f"metrics endpoint: cannot bind {bind}:{candidate} ({exc.strerror}); set metrics.bind to an "
                    f"address of this node (or auto), or metrics.port=0 to disable"
                ) from None
            tried.append(candidate)
            continue
        if tried:
            log.warning(
                "metrics: port(s) %s already in use on %s; serving on %d instead (the targets file says so)",
                ",".join(map(str, tried)),
                bind,
                candidate,
            )
        return server, candidate
    raise MetricsError(
        f"metrics endpoint: cannot bind {bind}:{port} (Address already in use, and {len(tried) - 1} more port(s) "
        f"after it); set metrics.port to a free base port (local rank r uses port + r) or metrics.port=0 to disable"
    )


def node_address(node: str, *, timeout: float = 30) -> str:
    """The address SLURM reaches a node at (its NodeAddr), falling back to the node's name; the
    rendezvous and a central Prometheus reach the node there."""
    try:
        out = subprocess.run(["scontrol", "show", "node", node], capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.TimeoutExpired):
        return node
    match = re.search(r"NodeAddr=(\S+)", out)
    return match.group(1) if match else node


def resolve_bind(bind: str, *, multi_node: bool, environ=None) -> str:
    """metrics.bind=auto: 127.0.0.1 for a run on this machine only; under SLURM or any launch that
    spans nodes, this node's address (SLURM's NodeAddr, else the hostname's address), so a central
    Prometheus can reach every node and the targets file says where. Any other value is kept."""
    if bind != "auto":
        return bind
    environ = os.environ if environ is None else environ
    if not (multi_node or "SLURM_JOB_ID" in environ):
        return "127.0.0.1"
    name = environ.get("SLURMD_NODENAME", "")
    address = node_address(name) if name else ""
    if address and address != name:
        return address
    try:
        return socket.gethostbyname(name or socket.gethostname())
    except OSError:
        return "0.0.0.0"  # unresolvable: listen everywhere; the target then names the hostname


def scrape_address(*, bind: str, node: str, port: int) -> str:
    """Where Prometheus reaches this rank: the bind address, or the hostname for a wildcard bind."""
    host = node if bind in ("", "0.0.0.0", "::") else bind
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def target_path(run_dir: Path, rank: int) -> Path:
    return Path(run_dir) / TARGETS_DIR / f"rank-{rank:05d}.json"


def write_targets_file(path: Path, *, targets: list[str], labels: Mapping[str, str]) -> None:
    """A Prometheus file-service-discovery targets file, replaced atomically (Prometheus watches
    the folder and must never read half a file). Empty label values are left out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps([{"targets": targets, "labels": {k: v for k, v in labels.items() if v}}], indent=2))
    os.replace(tmp, path)


class RankEndpoint:
    """This rank's /metrics server plus its file_sd entry in the run directory.

    One file per rank (`prometheus-targets/rank-NNNNN.json`): ranks on different nodes never write
    the same file, and Prometheus reads them all with one glob. The file is removed on a clean
    exit, so a finished run leaves no `up == 0` behind; after a crash it stays and the rank-down
    alert fires. The identity labels go on the target too, so `up` carries job and rank."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        run_dir: Path,
        port: int,
        bind: str,
        identity: Mapping[str, str],
        port_stride: int = 1,
    ):
        self.scrapes = ScrapeClock()
        registry.register(self.scrapes)
        self.server, port = serve(registry, port=port, bind=bind, stride=port_stride)
        self.port = port
        self.address = scrape_address(bind=bind, node=identity.get("node", ""), port=port)
        self.path = target_path(run_dir, int(identity["rank"]))
        write_targets_file(self.path, targets=[self.address], labels=identity)
        log.info("metrics: http://%s/metrics (targets file %s)", self.address, self.path)

    def close(self, final_scrape_wait: float = 0.0) -> None:
        """Withdraw the target and stop serving. With a wait, first keep serving (target in place)
        until a scrape starts after this call, so Prometheus records the final counters, or until
        the wait runs out (no Prometheus, or one that scrapes rarely)."""
        asked = time.monotonic()
        while self.scrapes.last_started < asked and time.monotonic() - asked < final_scrape_wait:
            time.sleep(0.05)
        self.path.unlink(missing_ok=True)
        self.server.shutdown()
        self.server.server_close()  # shutdown() only stops the loop; this releases the port


class ScrapeClock:
    """A collector that exports nothing and remembers when the registry was last collected, i.e.
    when the last scrape started (prometheus_client collects the registry once per request)."""

    def __init__(self):
        self.last_started = float("-inf")

    def collect(self):
        self.last_started = time.monotonic()
        return []
