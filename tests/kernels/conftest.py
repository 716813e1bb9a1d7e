"""Kernel tests run twice where they can: on CPU tensors through the Triton interpreter
(TRITON_INTERPRET=1, set by tests/conftest.py when there is no GPU) and, marked `gpu`, on CUDA
tensors with compiled kernels. On a GPU machine the interpreter is off, so the CPU variant is
skipped there and the same checks run compiled."""

import os

import pytest
import torch


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@pytest.fixture(
    params=[
        pytest.param(
            "cpu", marks=pytest.mark.skipif(not _interpreting(), reason="TRITON_INTERPRET is off (GPU machine)")
        ),
        pytest.param(
            "cuda",
            marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")],
        ),
    ]
)
def device(request):
    """Where the Triton implementation runs: interpreted on CPU, or compiled on a GPU."""
    return torch.device(request.param)
