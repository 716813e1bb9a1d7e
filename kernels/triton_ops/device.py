"""Launch on the tensors' GPU: Triton launches on the current CUDA device, so without this a
tensor on cuda:1 while cuda:0 is current (`--device cuda:1`) would be handed to a kernel running
on cuda:0 (an illegal address, or a silent peer read)."""

from __future__ import annotations

import contextlib

import torch


def on_device(t: torch.Tensor):
    """Context making t's GPU current for a launch (nothing to do when it already is)."""
    if t.is_cuda and t.device.index is not None and t.device.index != torch.cuda.current_device():
        return torch.cuda.device(t.device)
    return contextlib.nullcontext()
