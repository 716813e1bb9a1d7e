"""Choosing between the PyTorch reference and the Triton kernels (`impl=` of every public op).

Triton is imported lazily, on the first call that needs it: whether a `@triton.jit` function
is compiled or interpreted is decided when it is defined (TRITON_INTERPRET is read then), and
`import kernels` must keep working where Triton is not installed.
"""

from __future__ import annotations

import functools
import os

import torch

from kernels import guard

IMPLS = ("auto", "ref", "triton")


def interpreting() -> bool:
    """True when Triton runs kernels on CPU tensors through its interpreter (tests, no GPU)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def use_triton(impl: str, *tensors: torch.Tensor, op: str | None = None) -> bool:
    """Decide the implementation; `impl="triton"` on tensors it cannot serve is an error.

    "auto" picks Triton for CUDA tensors and the reference elsewhere (also under the
    interpreter: the interpreter is for correctness tests, it is far slower than PyTorch), unless
    kernels.guard.set_auto_impl says otherwise; with `op` named, Triton is used only once that
    op passed its first-use parity check on the device (kernels/guard.py).
    """
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r}: valid choices are {', '.join(IMPLS)}")
    if impl == "ref":
        return False
    on_cuda = all(t.is_cuda for t in tensors)
    if impl == "auto":
        mode = guard.auto_impl()
        runs = mode != "ref" and (on_cuda or (mode == "triton" and interpreting())) and _have_triton()
        runs = runs and not (on_cuda and unsupported_dtype(tensors))  # bf16 on a pre-Ampere GPU: the reference
        return runs and (op is None or guard.triton_verified(op, tensors[0].device))
    if not _have_triton():
        raise ValueError("impl='triton': the triton package is not installed; use impl='ref' or 'auto'")
    if not on_cuda and not interpreting():
        raise ValueError(
            "impl='triton' needs CUDA tensors (or TRITON_INTERPRET=1 set before the first "
            "call, for CPU tensors); use impl='auto' to fall back to the reference"
        )
    if on_cuda and unsupported_dtype(tensors):
        dev = tensors[0].device
        raise ValueError(
            f"impl='triton': bfloat16 needs a GPU of compute capability 8.0 or newer (Ampere); "
            f"{dev} ({torch.cuda.get_device_name(dev)}) is sm_{''.join(map(str, _capability(dev)))}; "
            f"use float32, or impl='auto'/'ref'"
        )
    return True


@functools.lru_cache(maxsize=None)
def _capability_of(index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)


def _capability(device: torch.device) -> tuple[int, int]:
    return _capability_of(torch.cuda.current_device() if device.index is None else device.index)


def unsupported_dtype(tensors) -> bool:
    """bf16 CUDA tensors on a GPU without bf16 arithmetic (before sm_80): Triton cannot compile
    the kernels there."""
    return any(t.dtype == torch.bfloat16 for t in tensors) and _capability(tensors[0].device) < (8, 0)


def check_devices(x: torch.Tensor, **tensors) -> None:
    """One clear error for a tensor argument on another device than x (None entries are skipped)."""
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}; move it with .to(x.device)")


def _have_triton() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Kernels accumulate in float64 for float64 inputs and in float32 for everything else."""
    return torch.float64 if dtype == torch.float64 else torch.float32
