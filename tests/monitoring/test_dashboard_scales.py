"""The dashboard never draws series of different scales against one axis (a learning rate of 1e-3
next to a loss scale of 65536 is a flat line), and its units say what the numbers are."""

from promkit import dashboard_panels
from test_shipped_files import metric_names, resolve

from trainer.telemetry.catalog import CATALOG

UNITS = {spec.name: spec.unit for spec in CATALOG}
# Series outside the catalog, in their own units.
FOREIGN = {"up": "ranks", "DCGM_FI_DEV_GPU_UTIL": "percent", "DCGM_FI_DEV_FB_USED": "MiB"}
# Counts of different events drawn together are one scale (small integers).
COUNTS = {"steps", "logs", "samples", "images"}


def scale(series: str) -> str:
    """Series of one scale share a key: the catalog unit, or for unitless series the series itself."""
    name = resolve(series)
    if name in FOREIGN:
        return FOREIGN[name]
    unit = UNITS.get(name, "")
    return "count" if unit in COUNTS else unit or name


def axes(panel: dict) -> dict[str, set[str]]:
    """{axis: scales of the series drawn against it}; an override puts a query on the right axis."""
    right = {
        o["matcher"]["options"]
        for o in panel.get("fieldConfig", {}).get("overrides", [])
        if o["matcher"]["id"] == "byFrameRefID"
        and any(p["id"] == "custom.axisPlacement" and p["value"] == "right" for p in o["properties"])
    }
    out: dict[str, set[str]] = {}
    for target in panel.get("targets", []):
        series = {s for s in metric_names(target["expr"]) if s != "hiresgan_rank_info"}  # a join, always 1
        out.setdefault("right" if target["refId"] in right else "left", set()).update(scale(s) for s in series)
    return out


def test_no_axis_mixes_scales():
    mixed = {
        panel["title"]: scales
        for panel in dashboard_panels()
        if panel.get("type") == "timeseries"
        for axis, scales in axes(panel).items()
        if len(scales) > 1
    }
    assert not mixed, mixed


def test_units_match_what_is_drawn():
    units = {
        panel["title"]: panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        for panel in dashboard_panels()
        if panel.get("type") != "row"
    }
    assert units["GPU memory used (DCGM)"] == "mbytes"  # DCGM reports framebuffer memory in MiB
    assert units["Throughput (images/s, all ranks)"].endswith("img/s")
    assert units["Corrupt samples skipped (rate)"].endswith("/s")
    assert units["Learning rate"] == "sci"


def test_the_evaluation_gauge_is_set_while_one_runs_and_zero_otherwise():
    import time

    from prometheus_client import CollectorRegistry

    from trainer.telemetry.prometheus import TrainingMetrics

    registry = CollectorRegistry()
    m = TrainingMetrics(
        registry, identity={"job": "j", "rank": "0", "local_rank": "0", "node": "n", "slurm_job_id": ""}
    )
    labels = {"job": "j", "rank": "0", "local_rank": "0", "node": "n", "slurm_job_id": ""}
    name = "hiresgan_evaluation_started_timestamp_seconds"
    assert registry.get_sample_value(name, labels) == 0
    m.observe_evaluation(True)
    assert abs(registry.get_sample_value(name, labels) - time.time()) < 60
    m.observe_evaluation(False)
    assert registry.get_sample_value(name, labels) == 0
