"""This rank's /metrics HTTP endpoint and its Prometheus file-service-discovery targets file."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Mapping

from prometheus_client import CollectorRegistry, start_http_server

from trainer.telemetry.catalog import TARGETS_DIR, MetricsError

log = logging.getLogger(__name__)


def serve(registry: CollectorRegistry, *, port: int, bind: str):
    """Start this rank's HTTP endpoint; a clear error names metrics.port when it is taken."""
    try:
        server, _thread = start_http_server(port, addr=bind, registry=registry)
    except OSError as exc:
        raise MetricsError(
            f"metrics endpoint: cannot bind {bind}:{port} ({exc.strerror}); set metrics.port to a free "
            f"base port (local rank r uses port + r) or metrics.port=0 to disable") from None
    return server


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

    def __init__(self, registry: CollectorRegistry, *, run_dir: Path, port: int, bind: str,
                 identity: Mapping[str, str]):
        self.scrapes = ScrapeClock()
        registry.register(self.scrapes)
        self.server = serve(registry, port=port, bind=bind)
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

