"""Cost of the Prometheus metrics per training step, per log step and per scrape, on this machine.

    python -m trainer.telemetry.bench      (or `make bench-metrics`)

Times the exact calls the loop makes (observe_step + one observe_phase per phase every step;
observe_log on log steps) and one scrape (`generate_latest`, run by the endpoint's thread), each
the best of 5 repeats. Compare per-step cost with the step time of `hiresgan bench`.
"""

import time

from prometheus_client import CollectorRegistry, generate_latest

from trainer.telemetry.prometheus import TrainingMetrics

LOSSES = {
    "G/adversarial": 0.7,
    "G/fake_score": 0.1,
    "G/path_length": 0.1,
    "G/pl_mean": 1.0,
    "D/adversarial": 1.0,
    "D/real_score": 0.1,
    "D/fake_score": 0.1,
    "D/real_sign": 0.2,
    "D/r1": 0.01,
}


def best_of(fn, calls: int, repeats: int = 5) -> float:
    """Microseconds per call, best of `repeats`."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls * 1e6)
    return best


def main() -> None:
    registry = CollectorRegistry()
    m = TrainingMetrics(registry, identity={"job": "bench", "rank": "0", "local_rank": "0", "node": "host"})
    m.set_static(world_size=8, target_kimg=25000, resolution=1024)

    def step():
        m.observe_step(images=4, step_seconds=0.5, data_wait_seconds=0.01, skipped=0)
        for phase in ("G_main", "G_reg", "D_main", "D_reg"):
            m.observe_phase(phase, 0.1)

    def log_step():
        m.observe_log(
            kimg=1.0,
            losses=LOSSES,
            lrs={"G": 2e-3, "D": 2e-3},
            ema_beta=0.99,
            grad_norms={"G": 1.0, "D": 1.0},
            skipped_steps={"G": 0, "D": 0},
            loss_scales={"G": 1.0, "D": 1.0},
        )

    step_us, log_us = best_of(step, 20000), best_of(log_step, 2000)
    scrape_us = best_of(lambda: generate_latest(registry), 300)
    print(
        f"per step: {step_us:.1f} us; per log step: {log_us:.1f} us; per scrape: {scrape_us / 1000:.2f} ms "
        f"({len(generate_latest(registry))} bytes)"
    )


if __name__ == "__main__":
    main()
