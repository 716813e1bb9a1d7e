"""Kernel benchmark: Triton vs reference vs torch.compile(reference), forward and forward+backward,
at StyleGAN2 1024x1024 layer shapes, with the device's measured copy bandwidth and matmul rate
beside each figure so every number reads as a fraction of the limit.

    python -m kernels.bench --out bench/kernels.json            # GPU: full shapes, bf16 and fp32
    python -m kernels.bench --quick --out /tmp/k.json           # anywhere: tiny shapes (plumbing)

Without a GPU it runs the reference and the compiled reference only, at --quick shapes (the
Triton interpreter measures nothing useful). Timings: on a GPU triton.testing.do_bench (CUDA
events, L2 flushed before each call), median over --rep-ms; on CPU perf_counter, median of
--iters calls after --warmup.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from kernels.bench_cases import Case, cases

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def time_it(fn: Callable[[], object], device: torch.device, warmup: int, iters: int, rep_ms: float = 100.0) -> float:
    """Median seconds per call. On a GPU: triton.testing.do_bench, which times each call with
    CUDA events and flushes the L2 cache before it (a sync per call with perf_counter adds
    launch and sync latency: 10-25% at 0.1 ms); it runs as many calls as fit in `rep_ms` after
    25 ms of warm-up. On CPU: perf_counter around `iters` calls after `warmup`."""
    if device.type == "cuda":
        from triton.testing import do_bench

        with torch.cuda.device(device):
            return do_bench(fn, warmup=25, rep=rep_ms, return_mode="median") / 1e3
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_bandwidth(device: torch.device, nbytes: int, warmup: int, iters: int) -> float:
    """Device-to-device copy, bytes read + written per second (the ceiling for memory-bound ops)."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    return 2 * nbytes / time_it(lambda: dst.copy_(src), device, warmup, iters)


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int, warmup: int, iters: int) -> float:
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return 2 * n**3 / time_it(lambda: a @ b, device, warmup, iters)


def _runner(case: Case, device, dtype, impl: str, direction: str, compile_backend: str | None):
    fn, leaves = case.make(device, dtype, "ref" if impl == "compiled" else impl)
    if impl == "compiled":
        fn = torch.compile(fn, backend=compile_backend, dynamic=False)
    if direction == "fwd":

        def run():
            with torch.no_grad():
                fn()

        return run
    grad_out = None

    def run():
        nonlocal grad_out
        y = fn()
        if grad_out is None:
            grad_out = torch.randn_like(y)
        torch.autograd.backward(y, grad_out)
        for t in leaves:
            t.grad = None

    return run


def bench(args, *, selected: Callable[[Case], bool] | None = None, deadline: float | None = None) -> dict:
    """Every case (or those `selected`) x dtype x direction x implementation. Past `deadline`
    (time.monotonic()), the remaining rows are skipped and listed in "skipped"."""
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    quick = args.quick or not on_gpu
    impls = (["triton"] if on_gpu else []) + ["ref"] + ([] if args.no_compile else ["compiled"])
    w, it, rep = args.warmup, args.iters, getattr(args, "rep_ms", 100.0)
    limits = {
        "copy_GBps": copy_bandwidth(device, (1 << 20) * (16 if quick else 512), w, it) / 1e9,
        "matmul_TFLOPs": {
            name: matmul_rate(device, dt, 256 if quick else 8192, w, it) / 1e12
            for name, dt in DTYPES.items()
            if name in args.dtypes
        },
    }
    rows, skipped = [], []
    for case in cases(quick):
        if (args.ops and case.op not in args.ops) or (selected is not None and not selected(case)):
            continue
        for dname in args.dtypes:
            dtype, esize = DTYPES[dname], DTYPES[dname].itemsize
            for direction in ("fwd", "fwd+bwd"):
                ref_s = None
                for impl in impls:
                    if deadline is not None and time.monotonic() > deadline:
                        skipped.append(f"{case.op} {case.label} {dname} {direction} {impl}")
                        continue
                    run = _runner(case, device, dtype, impl, direction, args.compile_backend)
                    secs = time_it(run, device, w, it, rep)
                    ref_s = secs if impl == "ref" else ref_s
                    nbytes = case.fwd_bytes(esize) + (case.bwd_bytes(esize) if direction == "fwd+bwd" else 0)
                    flops = case.flops * (3 if direction == "fwd+bwd" else 1)
                    gbps, tflops = nbytes / secs / 1e9, (flops / secs / 1e12 if flops else None)
                    rows.append(
                        dict(
                            op=case.op,
                            case=case.label,
                            shape=case.shape,
                            dtype=dname,
                            direction=direction,
                            impl=impl,
                            ms=secs * 1e3,
                            GBps=gbps,
                            frac_copy=gbps / limits["copy_GBps"],
                            TFLOPs=tflops,
                            frac_matmul=tflops / limits["matmul_TFLOPs"][dname] if flops else None,
                            speedup_vs_ref=None if ref_s is None else ref_s / secs,
                        )
                    )
                    print(_format_row(rows[-1]), flush=True)
    name = torch.cuda.get_device_name(device) if on_gpu else f"cpu ({platform.processor() or platform.machine()})"
    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        device=name,
        torch=torch.__version__,
        quick=quick,
        compile_backend=None if args.no_compile else args.compile_backend,
        timing="triton.testing.do_bench (CUDA events, L2 flushed), median"
        if on_gpu
        else f"perf_counter, median of {it} after {w} warm-up calls",
        command=" ".join(["python -m kernels.bench"] + args.argv),
        **limits,
        results=rows,
        skipped=skipped,
    )


HEADER = (
    f"{'op':<17} {'case':<34} {'dtype':<5} {'dir':<8} {'impl':<9} {'ms':>9} {'GB/s':>8} {'%copy':>6} "
    f"{'TFLOP/s':>8} {'x ref':>6}"
)


def _format_row(r: dict) -> str:
    tf = f"{r['TFLOPs']:8.2f}" if r["TFLOPs"] is not None else f"{'-':>8}"
    sp = f"{r['speedup_vs_ref']:6.2f}" if r["speedup_vs_ref"] is not None else f"{'-':>6}"
    return (
        f"{r['op']:<17} {r['case'][:34]:<34} {r['dtype']:<5} {r['direction']:<8} {r['impl']:<9} "
        f"{r['ms']:9.3f} {r['GBps']:8.1f} {100 * r['frac_copy']:5.1f}% {tf} {sp}"
    )


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m kernels.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench/kernels.json"), help="JSON file to write")
    p.add_argument("--quick", action="store_true", help="tiny shapes (always on without a GPU)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu")
    p.add_argument("--dtypes", default="bf16,fp32", help="comma-separated subset of bf16,fp32")
    p.add_argument("--ops", default="", help="comma-separated subset of upfirdn2d,bias_act,modulated_conv2d")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile(reference)")
    p.add_argument(
        "--compile-backend",
        default="inductor",
        help="torch.compile backend (aot_eager skips code generation: fast, for plumbing tests)",
    )
    p.add_argument("--warmup", type=int, default=3, help="warm-up calls on CPU (a GPU warms up for 25 ms)")
    p.add_argument("--iters", type=int, default=10, help="timed calls on CPU")
    p.add_argument("--rep-ms", type=float, default=100.0, help="on a GPU: ms of timed calls per row (do_bench)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.dtypes = [d for d in args.dtypes.split(",") if d]
    args.ops = [o for o in args.ops.split(",") if o]
    bad = [d for d in args.dtypes if d not in DTYPES]
    if bad or not args.dtypes:
        p.error(f"--dtypes {','.join(bad) or '(empty)'}: choose from {', '.join(DTYPES)}")
    known = {c.op for c in cases(True)}
    if any(o not in known for o in args.ops):
        p.error(f"--ops {','.join(args.ops)}: choose from {', '.join(sorted(known))}")
    if args.device not in ("cuda", "cpu") or (args.device == "cuda" and not torch.cuda.is_available()):
        p.error(f"--device {args.device}: use cpu, or cuda on a machine with a CUDA GPU")
    if args.warmup < 0 or args.iters < 1:
        p.error("--warmup must be >= 0 and --iters >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cpu" and not args.quick:
        print("kernels.bench: no GPU, running reference and compiled reference at --quick shapes", flush=True)
    print(HEADER, flush=True)
    report = bench(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(args.out)
    mm = ", ".join(f"{k} {v:.2f}" for k, v in report["matmul_TFLOPs"].items())
    print(f"device: {report['device']}; copy {report['copy_GBps']:.1f} GB/s; matmul TFLOP/s: {mm}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
