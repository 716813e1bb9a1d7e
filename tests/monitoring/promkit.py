"""Helpers of the monitoring tests: a real Prometheus server (Debian's `prometheus` package), plus the
shipped monitoring files and their PromQL expressions.

The server listens on 127.0.0.1 on a free port, scrapes every second through file service
discovery (the targets files the ranks write), evaluates the given rule files every second, and
keeps its TSDB in the test's temporary folder."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml
from portkit import free_ports

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "configs" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "hiresgan.json"
RULES = MONITORING / "alerts.yml"


class PromQLError(AssertionError):
    pass


class PrometheusServer:
    def __init__(self, workdir: Path, *, sd_files: list[str], rule_files: list[Path]):
        binary = shutil.which("prometheus")
        assert binary, "prometheus not installed"
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {
                    "job_name": "hiresgan",
                    "honor_labels": True,
                    "file_sd_configs": [{"files": sd_files, "refresh_interval": "1s"}],
                }
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_ports()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(workdir / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        self.log_path = workdir / "prometheus.log"
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{self.url}/-/ready", timeout=1).status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)

    def _get(self, path: str, **params) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            body = json.loads(urllib.request.urlopen(url, timeout=10).read())
        except urllib.error.HTTPError as exc:  # 400/422: a bad expression; the body says why
            body = json.loads(exc.read())
        if body.get("status") != "success":
            raise PromQLError(f"{params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        return self._get("/api/v1/query", **params)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict]:
        return self._get("/api/v1/query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=str(step))[
            "result"
        ]

    def wait_for(self, expr: str, timeout: float, what: str, alive: subprocess.Popen | None = None) -> list[dict]:
        """Poll until `expr` returns data; give up early when the process `alive` has exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            if alive is not None and alive.poll() is not None:
                raise AssertionError(f"the run exited (code {alive.returncode}) before {what}")
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} ({expr})")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ----------------------------------------------------------------------------- shipped expressions


def rule_expressions() -> dict[str, str]:
    """{alert name: expr} of the shipped rule file."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_panels(dashboard: dict | None = None) -> list[dict]:
    """Every panel, rows' nested panels included."""
    dashboard = dashboard or json.loads(DASHBOARD.read_text())
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_expressions() -> dict[str, str]:
    """{'panel title / refId': expr} for every Prometheus query of the dashboard."""
    exprs = {}
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            exprs[f"{panel['title']} / {target['refId']}"] = target["expr"]
    return exprs


def grafana_to_promql(expr: str, *, job: str, rank: str = ".*", rate_interval: str = "15s") -> str:
    """What Grafana sends for this expr with the dashboard's variables chosen."""
    for var, value in (("$__rate_interval", rate_interval), ("$__range", "1m"), ("$job", job), ("$rank", rank)):
        expr = expr.replace(var, value)
    return expr
