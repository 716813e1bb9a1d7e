"""What the kernel benchmark measures: each op at StyleGAN2 config-F 1024x1024 layer shapes
(batch 4 per GPU, as in the published 8-GPU recipe), or at tiny shapes for --quick.

A case builds its inputs once and gives a callable per implementation, plus the least number
of bytes any implementation must move (each input read once, each output written once) and
the useful FLOPs, so the benchmark can report achieved GB/s and TFLOP/s as fractions of the
device's measured limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from kernels.bias_act import bias_act
from kernels.modulated_conv2d import modulated_conv2d
from kernels.upfirdn2d import setup_filter, upfirdn2d


@dataclass
class Case:
    op: str
    label: str  # where the shape comes from in the network
    shape: list[int]  # the main input
    make: Callable  # (device, dtype, impl) -> (fn, inputs that take gradients)
    fwd_bytes: Callable[[int], int]  # element size -> bytes moved by the forward
    bwd_bytes: Callable[[int], int]  # element size -> bytes moved by the backward alone
    flops: float = 0.0  # useful FLOPs of the forward (the backward is counted as twice that)


def _numel(*shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _upfirdn_case(label, shape, up, down, pad, gain) -> Case:
    N, C, H, W = shape
    OH, OW = (H * up + pad[2] + pad[3] - 4) // down + 1, (W * up + pad[0] + pad[1] - 4) // down + 1
    n_in, n_out = _numel(N, C, H, W), _numel(N, C, OH, OW)

    def make(device, dtype, impl):
        f = setup_filter([1, 3, 3, 1], device=device)
        x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
        return (lambda: upfirdn2d(x, f, up=up, down=down, padding=pad, gain=gain, impl=impl)), [x]

    return Case("upfirdn2d", label, list(shape), make, lambda e: (n_in + n_out) * e, lambda e: (n_in + n_out) * e)


def _bias_act_case(label, shape) -> Case:
    n = _numel(*shape)

    def make(device, dtype, impl):
        x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
        b = torch.randn(shape[1], device=device, dtype=dtype, requires_grad=True)
        return (lambda: bias_act(x, b, act="lrelu", clamp=256, impl=impl)), [x, b]

    # backward: read the output gradient and x, write the input gradient
    return Case("bias_act", label, list(shape), make, lambda e: 2 * n * e, lambda e: 3 * n * e)


def _modconv_case(label, shape, out_ch, up) -> Case:
    N, I, H, W = shape
    OH, OW = H * up, W * up
    n_in, n_out = _numel(N, I, H, W), _numel(N, out_ch, OH, OW)

    def make(device, dtype, impl):
        g = dict(device=device, dtype=dtype)
        x = torch.randn(shape, **g, requires_grad=True)
        w = torch.randn(out_ch, I, 3, 3, **g, requires_grad=True)
        s = (torch.randn(N, I, **g) + 1).requires_grad_()
        b = torch.zeros(out_ch, **g, requires_grad=True)
        noise = torch.randn(N, 1, OH, OW, **g)
        f = setup_filter([1, 3, 3, 1], device=device)
        fn = lambda: modulated_conv2d(
            x,
            w,
            s,
            noise=noise,
            up=up,
            padding=1,
            resample_filter=f,  # noqa: E731
            flip_weight=(up == 1),
            fused_modconv=False,
            bias=b,
            act="lrelu",
            clamp=256,
            impl=impl,
        )
        return fn, [x, w, s, b]

    # The generator trains on the non-fused path: scale x, conv, then the epilogue.
    flops = 2.0 * N * out_ch * I * 9 * OH * OW / (up * up)  # taps that touch real (not inserted) pixels
    return Case(
        "modulated_conv2d",
        label,
        list(shape),
        make,
        lambda e: (n_in + n_out + _numel(N, 1, OH, OW)) * e,
        lambda e: (2 * n_in + 2 * n_out) * e,
        flops,
    )


def cases(quick: bool) -> list[Case]:
    """StyleGAN2 config F at 1024x1024: 32 channels at 1024, 64 at 512, batch 4 per GPU."""
    if quick:
        return [
            _upfirdn_case("quick up2", (2, 4, 16, 16), 2, 1, [2, 1, 2, 1], 4),
            _bias_act_case("quick", (2, 4, 32, 32)),
            _modconv_case("quick 3x3", (2, 4, 32, 32), 4, 1),
        ]
    return [
        _upfirdn_case("G upsample 512->1024", (4, 32, 512, 512), 2, 1, [2, 1, 2, 1], 4),
        _upfirdn_case("D filter before strided conv 1024", (4, 32, 1024, 1024), 1, 1, [2, 2, 2, 2], 1),
        _upfirdn_case("D downsample 1024->512", (4, 32, 1024, 1024), 1, 2, [1, 1, 1, 1], 1),
        _bias_act_case("G/D 1024 lrelu", (4, 32, 1024, 1024)),
        _bias_act_case("G/D 512 lrelu", (4, 64, 512, 512)),
        _modconv_case("G conv1 1024 (32->32)", (4, 32, 1024, 1024), 32, 1),
        _modconv_case("G conv0 up 512->1024 (64->32)", (4, 64, 512, 512), 32, 2),
        _modconv_case("G conv1 512 (64->64)", (4, 64, 512, 512), 64, 1),
    ]
