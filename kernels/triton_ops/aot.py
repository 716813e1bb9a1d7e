"""Compile every kernel for a CUDA architecture without a GPU (Triton ships ptxas).

The interpreter runs the kernels' arithmetic but not Triton's compiler, so type errors,
unsupported operations or constexpr mistakes in compiled mode would only show on a GPU. This
compiles each kernel, at the option combinations the ops use, down to a cubin:

    python -m kernels.triton_ops.aot --arch 90      # H100; 80 for A100

It must run with TRITON_INTERPRET unset (interpreted kernels cannot be compiled). It checks
that the kernels compile, not that they are correct or fast: that needs a GPU
(`pytest -m gpu tests/kernels`, `make bench-kernels`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_I = "i32"
_SCALARS = {"alpha": "fp32", "gain": "fp32", "clamp": "fp32"}


def _upfirdn2d_jobs(tl):
    from kernels.triton_ops.upfirdn2d import upfirdn2d_kernel as k

    def sig(dt, acc, idx):
        return {
            "x_ptr": f"*{dt}",
            "fy_ptr": f"*{acc}",
            "fx_ptr": f"*{acc}",
            "out_ptr": f"*{dt}",
            **{n: idx for n in ("P", "C", "H", "W", "OH", "OW", "sxn", "sxc", "sxh", "sxw", "tiles_y", "tiles_x")},
        }

    base = dict(
        UPX=1,
        UPY=1,
        DOWNX=1,
        DOWNY=1,
        PX0=0,
        PY0=0,
        FW=4,
        FH=4,
        SEPARABLE=False,
        ACC=tl.float32,
        INT64=False,
        BP=1,
        BH=4,
        BW=256,
    )
    return [
        (k, sig("fp32", "fp32", _I), {**base, "UPX": 2, "UPY": 2, "PX0": 2, "PY0": 2, "SEPARABLE": True}),
        (k, sig("bf16", "fp32", "i64"), {**base, "DOWNX": 2, "DOWNY": 2, "PX0": -1, "PY0": 1, "INT64": True}),
        (
            k,
            sig("fp64", "fp64", _I),
            {
                **base,
                "UPX": 4,
                "UPY": 2,
                "DOWNX": 4,
                "DOWNY": 2,
                "FW": 3,
                "FH": 5,
                "ACC": tl.float64,
                "BP": 64,
                "BH": 4,
                "BW": 4,
            },
        ),
    ]


def _bias_act_jobs(tl):
    from kernels.activations import KERNEL_ACTS
    from kernels.triton_ops.bias_act import bias_act_fwd_kernel, bias_act_grad_kernel

    def fwd_sig(dt, acc, idx=_I):
        return {
            "x_ptr": f"*{dt}",
            "b_ptr": f"*{dt}",
            "p_ptr": f"*{acc}",
            "out_ptr": f"*{dt}",
            "R": idx,
            "C": _I,
            "inner": idx,
            "chunks": _I,
            **_SCALARS,
        }

    def grad_sig(dt, acc):
        return {"g_ptr": f"*{dt}", "gg_ptr": f"*{dt}", **fwd_sig(dt, acc)}

    tiles = dict(INT64=False, BR=1, BI=1024)
    jobs = [
        (
            bias_act_fwd_kernel,
            fwd_sig("bf16", "fp32", "i64"),
            dict(P_PTR=False, HAS_BIAS=True, ACT=2, CLAMP=True, ACC=tl.float32, INT64=True, BR=4, BI=256),
        ),
        (
            bias_act_fwd_kernel,
            fwd_sig("fp64", "fp64"),
            dict(P_PTR=True, HAS_BIAS=False, ACT=8, CLAMP=False, ACC=tl.float64, **tiles),
        ),
    ]
    for code in KERNEL_ACTS:  # both derivative orders of every activation
        for order in (1, 2):
            jobs.append(
                (
                    bias_act_grad_kernel,
                    grad_sig("fp32", "fp32"),
                    dict(P_PTR=False, ORDER=order, HAS_BIAS=True, ACT=code, CLAMP=True, ACC=tl.float32, **tiles),
                )
            )
    return jobs


def _modconv_jobs(tl):
    from kernels.triton_ops.modconv import epilogue_bwd_kernel, epilogue_fwd_kernel

    strides = {**{n: _I for n in ("O", "HW", "W", "snn", "sno", "snh", "snw")}, **_SCALARS}

    def ptrs(dt, acc, names):  # parameters and partial sums are in the accumulation dtype
        return {n: (f"*{acc}" if n in ("p_ptr", "ps_ptr", "pb_ptr") else f"*{dt}") for n in names}

    fwd_names = ("c_ptr", "s_ptr", "n_ptr", "b_ptr", "p_ptr", "out_ptr")
    bwd_names = ("g_ptr", "c_ptr", "s_ptr", "n_ptr", "b_ptr", "p_ptr", "gc_ptr", "gn_ptr", "ps_ptr", "pb_ptr")
    on = dict(
        P_PTR=False,
        HAS_SCALE=True,
        HAS_NOISE=True,
        NOISE_FLAT=True,
        HAS_BIAS=True,
        ACT=2,
        CLAMP=True,
        ACC=tl.float32,
        INT64=False,
        BLOCK=1024,
    )
    off = dict(
        P_PTR=True,
        HAS_SCALE=False,
        HAS_NOISE=False,
        NOISE_FLAT=False,
        HAS_BIAS=False,
        ACT=0,
        CLAMP=False,
        ACC=tl.float64,
        INT64=False,
        BLOCK=1024,
    )
    bwd_sig = lambda dt, acc: {
        **ptrs(dt, acc, bwd_names),
        **{
            n: _I
            for n in (  # noqa: E731
                "O",
                "HW",
                "W",
                "chunks",
                "groups",
                "per_group",
                "snn",
                "sno",
                "snh",
                "snw",
            )
        },
        **_SCALARS,
    }
    return [
        (epilogue_fwd_kernel, {**ptrs("bf16", "fp32", fwd_names), **strides}, on),
        (epilogue_fwd_kernel, {**ptrs("fp64", "fp64", fwd_names), **strides}, off),
        (epilogue_bwd_kernel, {**bwd_sig("bf16", "fp32"), "gn_ptr": "*fp32"}, {**on, "NOISE_GRAD": 1}),
        (epilogue_bwd_kernel, bwd_sig("bf16", "fp32"), {**on, "NOISE_FLAT": False, "NOISE_GRAD": 2, "INT64": True}),
        (epilogue_bwd_kernel, bwd_sig("fp64", "fp64"), {**off, "NOISE_GRAD": 0}),
    ]


def compile_all(arch: int, verbose: bool = False) -> int:
    """Compile every job to a cubin for sm_`arch`; returns how many kernels were compiled."""
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("unset TRITON_INTERPRET: interpreted kernels cannot be compiled")
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    jobs = _upfirdn2d_jobs(tl) + _bias_act_jobs(tl) + _modconv_jobs(tl)
    for fn, sig, constexprs in jobs:
        t0 = time.perf_counter()
        full_sig = {**sig, **{k: "constexpr" for k in constexprs}}
        missing = [a for a in fn.arg_names if a not in full_sig]
        if missing:
            raise RuntimeError(f"{fn.__name__}: no signature for {missing}")
        compiled = triton.compile(ASTSource(fn, full_sig, constexprs=constexprs), target=GPUTarget("cuda", arch, 32))
        if not compiled.asm.get("cubin"):
            raise RuntimeError(f"{fn.__name__}: no cubin produced")
        if verbose:
            print(f"{fn.__name__:<18} {time.perf_counter() - t0:6.2f} s  {constexprs}", flush=True)
    return len(jobs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m kernels.triton_ops.aot", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", type=int, default=90, help="CUDA compute capability x10 (80 A100, 90 H100)")
    args = p.parse_args(argv)
    n = compile_all(args.arch, verbose=True)
    print(f"compiled {n} kernels for sm_{args.arch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
