"""The shipped monitoring files agree with the metric catalog and pass Prometheus' own checks:
`promtool check rules/config`, `promtool test rules` (the alerts' unit tests), and a structural
check of the Grafana dashboard. Fast: no training, no server."""

import json
import re
import shutil
import subprocess

import pytest
import yaml
from promkit import DASHBOARD, MONITORING, ROOT, RULES, dashboard_expressions, dashboard_panels, rule_expressions

from trainer.telemetry.catalog import CATALOG

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus; CI installs it)"
)
# Series that are not ours but that the dashboard and rules may use.
FOREIGN = {"up", "ALERTS", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def catalog_names() -> set[str]:
    return {spec.name for spec in CATALOG}


def metric_names(expr: str) -> set[str]:
    """Series names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_matchers = re.sub(r"\{[^}]*\}", "{}", without_strings)
    without_grouping = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_matchers)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_grouping):
        name = match.group(0)
        rest = without_grouping[match.end() :].lstrip()
        if rest.startswith("(") or name in ("and", "or", "unless", "bool", "offset") or name.startswith("__"):
            continue  # a function call, an operator, or a Grafana variable
        if match.start() > 0 and (
            without_grouping[match.start() - 1] in "$." or without_grouping[match.start() - 1].isdigit()
        ):
            continue  # $job, the m of 5m
        names.add(name)
    return names


def resolve(name: str) -> str:
    """A histogram's _bucket/_sum/_count series belong to its family."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in catalog_names():
            return name[: -len(suffix)]
    return name


def test_metric_name_parser_sees_series_and_skips_the_rest():
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(hiresgan_step_duration_seconds_bucket{job=~"$job"}'
        "[$__rate_interval]))) / on (job) group_left (rank) max_over_time(hiresgan_world_size[5m]) > 0.5"
    )
    assert metric_names(expr) == {"hiresgan_step_duration_seconds_bucket", "hiresgan_world_size"}
    assert {resolve(n) for n in metric_names(expr)} == {"hiresgan_step_duration_seconds", "hiresgan_world_size"}


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_expression_uses_only_catalog_series(source):
    exprs = dashboard_expressions() if source == "dashboard" else rule_expressions()
    assert exprs
    unknown = {}
    for key, expr in exprs.items():
        names = {resolve(n) for n in metric_names(expr)}
        missing = names - catalog_names() - FOREIGN
        if missing:
            unknown[key] = sorted(missing)
    assert not unknown, f"series not in trainer.metrics.CATALOG: {unknown}"


def test_the_dashboard_shows_every_catalog_series():
    used = {resolve(n) for expr in dashboard_expressions().values() for n in metric_names(expr)}
    # hiresgan_steps_total is the rate denominator of nothing on the dashboard; the tests use it.
    assert catalog_names() - used - {"hiresgan_steps_total"} == set()


def test_dashboard_structure_is_what_grafana_provisions():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "hiresgan-training" and dashboard["title"] and "id" not in dashboard
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"datasource", "job", "rank"}
    assert variables["rank"]["includeAll"] and variables["rank"]["multi"]
    panels = dashboard_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) and all(t["expr"].strip() for t in panel["targets"])
    titles = " | ".join(p["title"] for p in panels).lower()
    for topic in (
        "throughput",
        "eta",
        "progress",
        "adversarial",
        "regularizers",
        "augmentation",
        "data-wait",
        "p50 / p99",
        "skew",
        "memory",
        "checkpoint age",
        "gpu utilization",
    ):
        assert topic in titles, f"no panel about {topic}"


def test_grafana_provisioning_files_parse():
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/hiresgan.yml").read_text())
    assert provider["apiVersion"] == 1 and provider["providers"][0]["type"] == "file"
    source = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert source["datasources"][0]["type"] == "prometheus"


@needs_promtool
def test_promtool_checks_the_rules_and_the_scrape_config():
    for args in (["check", "rules", str(RULES)], ["check", "config", str(MONITORING / "prometheus.yml")]):
        result = subprocess.run(["promtool", *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_of_the_alerts_pass():
    result = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"], cwd=MONITORING, capture_output=True, text=True
    )
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    # Every alert has at least one case where it fires.
    tests = yaml.safe_load((MONITORING / "alerts_test.yml").read_text())["tests"]
    fired = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert fired == set(rule_expressions())


def test_the_docs_catalog_lists_every_series():
    text = (ROOT / "docs" / "MONITORING.md").read_text()
    rows = set(re.findall(r"^\| `(hiresgan_[a-z_]+)`", text, flags=re.M))
    assert rows == catalog_names()
