"""The metric catalog as exported by one rank: every series exists with its type and labels, the
values follow the calls, the exposition passes `promtool check metrics`, and the HTTP endpoint
publishes (and withdraws) its file_sd target. Single process, no training: fast."""

import json
import math
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

import pytest
import torch
from portkit import free_ports
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from trainer.telemetry import catalog, probes, prometheus
from trainer.telemetry import endpoint as rank_endpoint

IDENTITY = {"job": "unit", "rank": "3", "local_rank": "1", "node": "host-a", "slurm_job_id": ""}
LOSSES = {
    "G/adversarial": 0.7,
    "G/fake_score": -0.2,
    "G/path_length": 0.05,
    "G/pl_mean": 1.5,
    "D/adversarial": 1.3,
    "D/real_score": 0.4,
    "D/fake_score": -0.3,
    "D/real_sign": 0.25,
    "D/r1": 0.01,
}


def populated(**log_overrides) -> tuple[CollectorRegistry, prometheus.TrainingMetrics]:
    registry = CollectorRegistry()
    m = prometheus.TrainingMetrics(registry, identity=IDENTITY, gpu="")
    m.set_static(world_size=4, target_kimg=25.0, resolution=32)
    for _ in range(3):
        m.observe_step(images=8, step_seconds=0.2, data_wait_seconds=0.01, skipped=1)
    m.observe_phase("G_main", 0.05)
    m.observe_phase("D_reg", 0.07)
    kwargs = dict(
        kimg=0.096,
        losses=LOSSES,
        lrs={"G": 0.002, "D": 0.0019},
        ema_beta=0.99,
        grad_norms={"G": 1.5, "D": 2.5},
        skipped_steps={"G": 0, "D": 2},
        loss_scales={"G": 1.0, "D": 1.0},
        augment_probability=0.1,
        diversity_ratio=0.9,
    )
    kwargs.update(log_overrides)
    m.observe_log(**kwargs)
    m.observe_checkpoint(1.25)
    m.observe_validation({"sr_psnr": 27.5})
    return registry, m


def samples(registry) -> tuple[dict, dict]:
    return exposition_samples(generate_latest(registry).decode())


def exposition_samples(text: str) -> tuple[dict, dict]:
    """{(sample name, frozenset of non-identity labels): value} and the family types."""
    out, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            assert {k: s.labels[k] for k in catalog.IDENTITY_LABELS} == IDENTITY, s
            extra = frozenset((k, v) for k, v in s.labels.items() if k not in catalog.IDENTITY_LABELS)
            out[(s.name, extra)] = s.value
    return out, types


def test_every_catalog_series_is_exported_with_its_type_and_labels():
    registry, _ = populated()
    values, types = samples(registry)
    names = {name for name, _ in values}
    for spec in catalog.CATALOG:
        if spec.key.startswith("cuda_"):
            continue  # GPU runs only
        family = spec.name.removesuffix("_total")
        assert types.get(family) == spec.kind, spec.name
        probe = spec.name + ("_count" if spec.kind == "histogram" else "")
        assert probe in names, f"{spec.name} not exported"
        for (name, extra), _ in values.items():
            if name == probe:
                assert {k for k, _ in extra} == set(spec.labels), (spec.name, extra)
    assert all(s.name.startswith("hiresgan_") for s in catalog.CATALOG)
    assert len({s.name for s in catalog.CATALOG}) == len(catalog.CATALOG)


def test_values_follow_the_calls():
    registry, _ = populated()
    v, _ = samples(registry)
    no = frozenset()
    assert v[("hiresgan_images_seen_total", no)] == 24 and v[("hiresgan_steps_total", no)] == 3
    assert v[("hiresgan_corrupt_samples_total", no)] == 3
    assert v[("hiresgan_step_duration_seconds_count", no)] == 3
    assert v[("hiresgan_step_duration_seconds_sum", no)] == pytest.approx(0.6)
    assert v[("hiresgan_phase_duration_seconds_count", frozenset({("phase", "D_reg")}))] == 1
    assert v[("hiresgan_loss", frozenset({("network", "D"), ("term", "r1")}))] == pytest.approx(0.01)
    assert v[("hiresgan_loss", frozenset({("network", "G"), ("term", "path_length")}))] == pytest.approx(0.05)
    # Scores, r_t and the path-length mean are not losses: they have their own series.
    assert not any(n == "hiresgan_loss" and ("term", "real_sign") in e for n, e in v)
    assert v[("hiresgan_ada_rt", no)] == pytest.approx(0.25)
    assert v[("hiresgan_path_length_mean", no)] == pytest.approx(1.5)
    assert v[("hiresgan_discriminator_logit_mean", frozenset({("network", "D"), ("input", "real")}))] == 0.4
    assert v[("hiresgan_grad_norm", frozenset({("network", "D")}))] == 2.5
    assert v[("hiresgan_skipped_steps_total", frozenset({("network", "D")}))] == 2
    assert v[("hiresgan_nonfinite_loss_logs_total", frozenset({("network", "G")}))] == 0
    assert v[("hiresgan_world_size", no)] == 4 and v[("hiresgan_resolution_pixels", no)] == 32
    assert v[("hiresgan_augment_probability", no)] == pytest.approx(0.1)
    assert v[("hiresgan_sample_diversity_ratio", no)] == pytest.approx(0.9)
    assert v[("hiresgan_process_resident_memory_bytes", no)] > 10 * 2**20
    assert v[("hiresgan_rank_info", frozenset({("gpu", ""), ("Hostname", "host-a")}))] == 1
    assert v[("hiresgan_checkpoint_duration_seconds", no)] == 1.25
    assert v[("hiresgan_last_checkpoint_timestamp_seconds", no)] >= v[("hiresgan_last_step_timestamp_seconds", no)]


def test_nonfinite_losses_are_counted_and_skipped_steps_add_only_news():
    registry, m = populated(losses={**LOSSES, "D/r1": float("nan")})
    m.observe_log(
        kimg=0.2, losses={"G/adversarial": float("inf")}, lrs={}, ema_beta=0.99, skipped_steps={"G": 0, "D": 5}
    )
    m.observe_log(kimg=0.3, losses={"G/adversarial": 0.5}, lrs={}, ema_beta=0.99, skipped_steps={"G": 0, "D": 5})
    v, _ = samples(registry)
    assert v[("hiresgan_nonfinite_loss_logs_total", frozenset({("network", "D")}))] == 1
    assert v[("hiresgan_nonfinite_loss_logs_total", frozenset({("network", "G")}))] == 1
    assert math.isnan(v[("hiresgan_loss", frozenset({("network", "D"), ("term", "r1")}))])
    assert v[("hiresgan_skipped_steps_total", frozenset({("network", "D")}))] == 5


def test_skipped_steps_restored_by_a_resume_are_not_counted_again():
    registry = CollectorRegistry()
    m = prometheus.TrainingMetrics(registry, identity=IDENTITY)
    m.set_static(world_size=1, target_kimg=1, resolution=32, skipped_steps={"G": 0, "D": 7})
    m.observe_log(kimg=0.1, losses={}, lrs={}, ema_beta=0.9, skipped_steps={"G": 1, "D": 9})
    v, _ = samples(registry)
    assert v[("hiresgan_skipped_steps_total", frozenset({("network", "D")}))] == 2
    assert v[("hiresgan_skipped_steps_total", frozenset({("network", "G")}))] == 1


def test_timestamps_read_as_now_before_training_starts():
    # A scrape between the rank's start and set_static() must not see 0: the stall alert
    # (time() - last step > 600) would fire on a rank that has not had its first step yet.
    before = time.time()
    registry = CollectorRegistry()
    prometheus.TrainingMetrics(registry, identity=IDENTITY)
    v, _ = samples(registry)
    for name in ("hiresgan_last_step_timestamp_seconds", "hiresgan_last_checkpoint_timestamp_seconds"):
        assert before <= v[(name, frozenset())] <= time.time(), name


def test_grad_norm_is_the_l2_norm_of_all_gradients():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    assert probes.grad_norm(net) is None
    net(torch.randn(5, 3)).sum().backward()
    expected = torch.cat([p.grad.flatten() for p in net.parameters()]).norm()
    torch.testing.assert_close(probes.grad_norm(net), expected)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_finds_nothing_to_fix_in_the_exposition():
    registry, _ = populated()
    result = subprocess.run(["promtool", "check", "metrics"], input=generate_latest(registry), capture_output=True)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result


def test_rank_endpoint_serves_and_publishes_its_target(tmp_path):
    registry, _ = populated()
    port = free_ports()
    endpoint = rank_endpoint.RankEndpoint(registry, run_dir=tmp_path, port=port, bind="127.0.0.1", identity=IDENTITY)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "hiresgan_images_seen_total{" in body
        entry = json.loads((tmp_path / "prometheus-targets" / "rank-00003.json").read_text())
        assert entry == [
            {
                "targets": [f"127.0.0.1:{port}"],
                "labels": {"job": "unit", "rank": "3", "local_rank": "1", "node": "host-a"},
            }
        ]
    finally:
        endpoint.close()
    assert not (tmp_path / "prometheus-targets" / "rank-00003.json").exists()
    assert rank_endpoint.scrape_address(bind="0.0.0.0", node="gpu-node-7", port=9400) == "gpu-node-7:9400"


def test_a_finishing_endpoint_serves_until_its_final_scrape(tmp_path):
    registry, m = populated()
    port = free_ports()
    endpoint = rank_endpoint.RankEndpoint(registry, run_dir=tmp_path, port=port, bind="127.0.0.1", identity=IDENTITY)
    target = tmp_path / "prometheus-targets" / "rank-00003.json"
    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()  # a scrape before the end
    m.observe_step(images=8, step_seconds=0.2, data_wait_seconds=0.01, skipped=0)  # the last step
    scraped = []

    def prometheus():  # scrapes once, 0.5 s after the run ended
        time.sleep(0.5)
        scraped.append((target.exists(), urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()))

    scraper = threading.Thread(target=prometheus)
    scraper.start()
    started = time.monotonic()
    endpoint.close(final_scrape_wait=60)  # returns at that scrape, not after 60 s
    waited = time.monotonic() - started
    scraper.join()
    target_listed, body = scraped[0]
    assert target_listed and waited < 30, waited  # the earlier scrape did not count; the wait ended early
    # The final scrape saw the last step: 3 steps of 8 images from populated() plus this one.
    v, _ = exposition_samples(body.decode())
    assert v[("hiresgan_images_seen_total", frozenset())] == 32
    assert not target.exists()
    with pytest.raises(ConnectionRefusedError):  # the port is released, not just left unserved
        socket.create_connection(("127.0.0.1", port), timeout=5)
    # Nobody scrapes: the wait runs out and the endpoint still closes (and the same port binds again).
    endpoint = rank_endpoint.RankEndpoint(
        CollectorRegistry(), run_dir=tmp_path, port=port, bind="127.0.0.1", identity=IDENTITY
    )
    started = time.monotonic()
    endpoint.close(final_scrape_wait=0.3)
    assert time.monotonic() - started >= 0.3 and not target.exists()


def tiny_networks():
    from trainer.config import load_config
    from trainer.models import build_networks

    cfg = load_config(
        "configs/digits.yaml",
        [
            "model.channel_base=256",
            "model.channel_max=16",
            "model.z_dim=16",
            "model.w_dim=16",
            "model.mapping_layers=1",
        ],
    )
    torch.manual_seed(0)
    G, D = build_networks(cfg)
    return G.eval(), D, cfg


def test_diversity_probe_reads_near_zero_for_a_collapsed_generator():
    G, D, cfg = tiny_networks()
    real = torch.rand(8, cfg.data.channels, cfg.data.resolution, cfg.data.resolution) * 2 - 1
    real_c = torch.nn.functional.one_hot(torch.arange(8) % cfg.data.num_classes, cfg.data.num_classes).float()
    probe = probes.DiversityProbe(batch=8, z_dim=G.z_dim)
    assert [probe.due() for _ in range(7)] == [True, False, False, False, False, True, False]
    healthy = probe.ratio(G, D, real, real_c)
    assert healthy is not None and torch.isfinite(healthy) and healthy > 0.01
    # Every probe latent the same and every label the same: one image repeated -> no spread at all.
    probe.z = probe.z[:1].repeat(8, 1)
    collapsed = probe.ratio(G, D, real, real_c[:1].repeat(8, 1))
    assert collapsed < 1e-3 * healthy
    # A discriminator without StyleGAN2's epilogue gives no reading rather than a wrong one.
    assert probe.ratio(G, torch.nn.Identity(), real, real_c) is None
