"""Time StyleGAN2 training steps with the Triton kernels on or off: the phases of the
StyleGAN2-ADA recipe (G main, G path length, D main, D R1) on synthetic images, in one process,
without DeepSpeed, data loading or logging, so the figure is the networks' and kernels' alone.

    python -m trainer.telemetry.step_timing --config configs/ffhq256.yaml --kernels auto,ref --out /tmp/steps.json

`--kernels auto`: what training uses (Triton on CUDA, after the first-use check); `ref`: the
PyTorch reference everywhere (kernels.set_auto_impl). Each phase is timed on its own (a device
sync before and after) and averaged over the timed steps; the regularization phases run every
timed step and are amortized by their lazy intervals, as in training:
step = G_main + D_main + G_reg / g_reg_interval + D_reg / d_reg_interval, and
sec/kimg = step / batch * 1000. Peak memory: CUDA max allocated (GPU) or peak RSS (CPU).
Writes {..., "runs": {mode: result}}; `python -m kernels.gpu_check` runs it as a subprocess.

`--profile DIR`: after the timed steps, each phase runs `--profile-steps` more times under
torch.profiler (CPU, plus CUDA on a GPU); DIR/<mode>_<phase>.txt gets the op table by self time
and the JSON each phase's top ops (name, calls, self ms per call of the phase).
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import sys
import time
from pathlib import Path

import torch

import kernels


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _profile_phase(run_once, *, device: torch.device, steps: int, table: Path) -> list[dict]:
    """Run one phase `steps` times under torch.profiler; write the op table, return the top ops
    by self time (device time on a GPU, CPU time otherwise), per run of the phase."""
    from torch.profiler import ProfilerActivity, profile

    gpu = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])) as prof:
        for _ in range(steps):
            run_once()
            _sync(device)
    averages = prof.key_averages()
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(averages.table(sort_by="self_device_time_total" if gpu else "self_cpu_time_total", row_limit=40))

    def self_us(e) -> float:
        return (getattr(e, "self_device_time_total", 0) or 0) if gpu else e.self_cpu_time_total

    top = sorted(averages, key=self_us, reverse=True)[:12]
    return [{"op": e.key, "calls": e.count / steps, "self_ms": self_us(e) / 1e3 / steps} for e in top]


def time_steps(
    cfg,
    *,
    device: torch.device,
    dtype: torch.dtype,
    batch: int,
    warmup: int,
    steps: int,
    profile_dir: Path | None = None,
    profile_steps: int = 3,
    label: str = "",
) -> dict:
    from trainer import losses
    from trainer.models import build_networks

    torch.manual_seed(0)
    G, D = build_networks(cfg)
    G, D = G.to(device), D.to(device)
    for param in [*G.parameters(), *D.parameters()]:  # bf16 weights; buffers (w_avg, filters) stay fp32
        param.data = param.data.to(dtype)
    opt = {n: torch.optim.Adam(m.parameters(), lr=0.002, betas=(0.0, 0.99), eps=1e-8) for n, m in (("G", G), ("D", D))}
    loss = cfg.loss
    g_int = loss.g_reg_interval if loss.pl_weight > 0 else 0
    d_int = loss.d_reg_interval if loss.r1_gamma > 0 else 0
    res, ch = cfg.data.resolution, cfg.data.channels
    c_dim = getattr(G, "c_dim", 0)
    pl_mean = torch.zeros([], device=device)

    def labels(n):
        return None if not c_dim else torch.eye(c_dim, device=device, dtype=dtype)[torch.randint(c_dim, (n,))]

    def z(n):
        return torch.randn(n, G.z_dim, device=device, dtype=dtype)

    real = torch.rand(batch, ch, res, res, device=device, dtype=dtype) * 2 - 1  # timing only: any images
    real_c = labels(batch)
    mix, kind = loss.style_mixing, loss.kind
    n_pl = max(1, batch // loss.pl_batch_shrink)
    phases = {
        "G_main": ("G", lambda: losses.generator_main(G, D, z(batch), labels(batch), style_mixing=mix, kind=kind)),
        "D_main": (
            "D",
            lambda: losses.discriminator_main(G, D, real, real_c, z(batch), labels(batch), style_mixing=mix, kind=kind),
        ),
    }
    if g_int:
        phases["G_reg"] = (
            "G",
            lambda: losses.generator_path_length(
                G,
                z(n_pl),
                labels(n_pl),
                pl_mean,
                style_mixing=mix,
                weight=loss.pl_weight,
                decay=loss.pl_decay,
                interval=g_int,
            ),
        )
    if d_int:
        phases["D_reg"] = ("D", lambda: losses.discriminator_r1(D, real, real_c, gamma=loss.r1_gamma, interval=d_int))
    nets = {"G": G, "D": D}
    seconds = {name: [] for name in phases}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def run_phase(name: str) -> None:
        net, compute = phases[name]
        nets[net].requires_grad_(True)
        nets["D" if net == "G" else "G"].requires_grad_(False)
        compute().total.backward()
        opt[net].step()
        opt[net].zero_grad(set_to_none=True)

    for step in range(warmup + steps):
        for name in phases:
            _sync(device)
            t0 = time.perf_counter()
            run_phase(name)
            _sync(device)
            if step >= warmup:
                seconds[name].append(time.perf_counter() - t0)
    top_ops = {}
    if profile_dir is not None:
        for name in phases:
            table = profile_dir / f"{label or 'run'}_{name}.txt"
            top_ops[name] = _profile_phase(
                functools.partial(run_phase, name), device=device, steps=profile_steps, table=table
            )
    mean_ms = {name: 1e3 * sum(v) / len(v) for name, v in seconds.items()}
    interval = {"G_main": 1, "D_main": 1, "G_reg": g_int or 1, "D_reg": d_int or 1}
    step_ms = sum(ms / interval[name] for name, ms in mean_ms.items())
    if device.type == "cuda":
        peak, peak_kind = torch.cuda.max_memory_allocated(device), "cuda_max_allocated"
    else:
        peak, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "cpu_peak_rss"
    return {
        "phase_ms": mean_ms,
        "reg_intervals": {"G_reg": g_int, "D_reg": d_int},
        "step_ms": step_ms,
        "sec_per_kimg": step_ms / 1e3 / batch * 1000,
        "peak_memory_bytes": peak,
        "peak_memory_kind": peak_kind,
        "kernel_checks": kernels.guard.verdicts(),
        **({"top_ops": top_ops} if top_ops else {}),
    }


def main(argv=None) -> int:
    from trainer.config import load_config

    p = argparse.ArgumentParser(prog="python -m trainer.telemetry.step_timing", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--kernels", default="auto", help="auto (Triton on CUDA), ref (Triton off), or both: auto,ref")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=("fp32", "bf16", "config"), default="config")
    p.add_argument("--batch", type=int, default=16, help="images per step (one device)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--profile", type=Path, default=None, metavar="DIR", help="write torch.profiler op tables here")
    p.add_argument("--profile-steps", type=int, default=3, help="profiled runs of each phase (with --profile)")
    p.add_argument("overrides", nargs="*", help="config overrides, key=value")
    args = p.parse_args(argv)
    if args.batch < 1 or args.steps < 1 or args.warmup < 0 or args.profile_steps < 1:
        p.error("--batch, --steps and --profile-steps must be >= 1, --warmup >= 0")
    cfg = load_config(args.config, args.overrides)
    if cfg.model.family != "stylegan2":
        p.error(f"--config {args.config}: model.family is {cfg.model.family}; this times the stylegan2 recipe")
    modes = args.kernels.split(",")
    if not modes or any(m not in ("auto", "ref") for m in modes):
        p.error(f"--kernels {args.kernels}: auto, ref or auto,ref")
    kernels.set_parity_check(cfg.train.kernel_check)
    precision = cfg.train.precision if args.precision == "config" else args.precision
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    runs = {}
    for mode in modes:  # one process: the second run reuses the CUDA context, not the kernels' state
        kernels.set_auto_impl("ref" if mode == "ref" else "default")
        t0 = time.perf_counter()
        runs[mode] = time_steps(
            cfg,
            device=device,
            dtype=torch.bfloat16 if precision == "bf16" else torch.float32,
            batch=args.batch,
            warmup=args.warmup,
            steps=args.steps,
            profile_dir=args.profile,
            profile_steps=args.profile_steps,
            label=mode,
        )
        runs[mode]["wall_s"] = time.perf_counter() - t0
        print(
            f"step_timing: kernels={mode} {runs[mode]['sec_per_kimg']:.2f} sec/kimg, step "
            f"{runs[mode]['step_ms']:.1f} ms, peak {runs[mode]['peak_memory_bytes'] / 2**30:.2f} GiB",
            flush=True,
        )
    result = dict(
        config=str(args.config),
        overrides=args.overrides,
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        precision=precision,
        batch=args.batch,
        resolution=cfg.data.resolution,
        warmup=args.warmup,
        steps=args.steps,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        runs=runs,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
