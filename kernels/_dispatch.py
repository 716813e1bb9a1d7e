"""Choosing between the PyTorch reference and the Triton kernels (`impl=` of every public op).

Triton is imported lazily, on the first call that needs it: whether a `@triton.jit` function
is compiled or interpreted is decided when it is defined (TRITON_INTERPRET is read then), and
`import kernels` must keep working where Triton is not installed.
"""

from __future__ import annotations

import os

import torch

IMPLS = ("auto", "ref", "triton")


def interpreting() -> bool:
    """True when Triton runs kernels on CPU tensors through its interpreter (tests, no GPU)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def use_triton(impl: str, *tensors: torch.Tensor) -> bool:
    """Decide the implementation; `impl="triton"` on tensors it cannot serve is an error.

    "auto" picks Triton for CUDA tensors and the reference elsewhere (also under the
    interpreter: the interpreter is for correctness tests, it is far slower than PyTorch).
    """
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r}: valid choices are {', '.join(IMPLS)}")
    if impl == "ref":
        return False
    on_cuda = all(t.is_cuda for t in tensors)
    if impl == "auto":
        return on_cuda and _have_triton()
    if not _have_triton():
        raise ValueError("impl='triton': the triton package is not installed; use impl='ref' or 'auto'")
    if not on_cuda and not interpreting():
        raise ValueError("impl='triton' needs CUDA tensors (or TRITON_INTERPRET=1 set before the first "
                         "call, for CPU tensors); use impl='auto' to fall back to the reference")
    return True


def _have_triton() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Kernels accumulate in float64 for float64 inputs and in float32 for everything else."""
    return torch.float64 if dtype == torch.float64 else torch.float32
