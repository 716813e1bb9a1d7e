"""On a GPU, forward and backward of every op queue work without waiting for the device
(`torch.cuda.set_sync_debug_mode("error")` raises on any synchronizing call)."""

import pytest
import torch

import kernels

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_ops_do_not_synchronize():
    dev, dt = torch.device("cuda"), torch.bfloat16
    x = torch.randn(2, 8, 16, 16, device=dev, dtype=dt, requires_grad=True)
    w = torch.randn(8, 8, 3, 3, device=dev, dtype=dt, requires_grad=True)
    s = torch.randn(2, 8, device=dev, dtype=dt, requires_grad=True)
    b = torch.zeros(8, device=dev, dtype=dt, requires_grad=True)
    noise = torch.randn(2, 1, 32, 32, device=dev, dtype=dt, requires_grad=True)
    f = kernels.setup_filter([1, 3, 3, 1], device=dev)
    for _ in range(2):  # the first round compiles the kernels, which may synchronize
        torch.cuda.set_sync_debug_mode("error" if _ else "default")
        try:
            y = kernels.bias_act(x, b, act="lrelu", clamp=256)
            y = kernels.upsample2d(y, f)
            y = kernels.modulated_conv2d(
                y, w, s, noise=noise, padding=1, fused_modconv=False, bias=b, act="lrelu", clamp=256
            )
            y.float().square().sum().backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
