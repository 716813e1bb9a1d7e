"""The CPU reference paths were rewritten for speed (docs/KERNELS.md, "CPU step"): each test
here keeps the earlier, literal formulation and checks the rewrite against it, values and
gradients to second order (R1 and path length differentiate twice)."""

import pytest
import torch
import torch.nn.functional as F

from kernels import setup_filter, upfirdn2d
from kernels.upfirdn2d import correlation_taps, upfirdn2d_ref


def _upfirdn2d_literal(x, f, up, down, padding, flip_filter, gain):
    """The reference before the rewrite: zero-insert, pad, filter every position, then slice."""
    (upx, upy), (downx, downy) = up, down
    px0, px1, py0, py1 = padding
    N, C, H, W = x.shape
    x = x.reshape(N, C, H, 1, W, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1]).reshape(N, C, H * upy, W * upx)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    f = correlation_taps(f, flip_filter, gain, x.dtype, x.device)
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat([C, 1, 1, 1]), groups=C)
    else:
        x = F.conv2d(x, f[None, None, None, :].repeat([C, 1, 1, 1]), groups=C)
        x = F.conv2d(x, f[None, None, :, None].repeat([C, 1, 1, 1]), groups=C)
    return x[:, :, ::downy, ::downx]


CASES = [  # (up, down, padding, taps, separable): every resampling the networks use, and more
    ((1, 1), (2, 2), (1, 1, 1, 1), [1, 3, 3, 1], False),  # D's 1x1 skip: downsample
    ((1, 1), (1, 1), (2, 2, 2, 2), [1, 3, 3, 1], False),  # before D's strided 3x3 conv
    ((1, 1), (1, 1), (1, 1, 1, 1), [1, 3, 3, 1], False),  # after G's transposed conv
    ((2, 2), (1, 1), (2, 1, 2, 1), [1, 3, 3, 1], False),  # upsample2d (toRGB skip)
    ((1, 1), (1, 1), (0, 0, 0, 0), None, False),  # nothing at all
    ((1, 1), (2, 2), (-1, 0, 0, -1), [1, 2, 1], False),  # crops, odd filter
    ((2, 1), (1, 2), (3, 0, 1, 2), [1, 3, 3, 1], False),  # different factors per axis
    ((1, 1), (2, 2), (3, 3, 3, 3), [1, 3, 3, 3, 3, 3, 3, 1], True),  # separable
    ((2, 2), (2, 2), (1, 2, 2, 1), [1, 3, 3, 3, 3, 3, 3, 1], True),
    ((1, 1), (3, 3), (1, 1, 1, 1), [1, 3, 3, 1], False),  # a size the stride does not divide
]


@pytest.mark.parametrize("up, down, padding, taps, separable", CASES)
@pytest.mark.parametrize("flip_filter, gain", [(False, 1.0), (True, 4.0)])
@pytest.mark.parametrize("public", [False, True], ids=["upfirdn2d_ref", "upfirdn2d-eager"])
def test_upfirdn2d_reference_equals_its_literal_form(up, down, padding, taps, separable, flip_filter, gain, public):
    """upfirdn2d_ref (plain autograd) and the public op in eager mode (one FIRReference node,
    whose gradients are upfirdn2d again) against the literal form."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64, generator=gen, requires_grad=True)
    f = None if taps is None else setup_filter(taps, separable=separable).double()
    kwargs = dict(up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    ref = (lambda t, f, **kw: upfirdn2d(t, f, impl="ref", **kw)) if public else upfirdn2d_ref
    new, old = ref(x, f, **kwargs), _upfirdn2d_literal(x, f, up, down, padding, flip_filter, gain)
    assert new.shape == old.shape
    torch.testing.assert_close(new, old, rtol=1e-13, atol=1e-13)
    # First and second derivatives (as R1 takes them): grad of sum(y * g), then of |grad|^2.
    g = torch.randn(new.shape, dtype=torch.float64, generator=gen)
    grads = [torch.autograd.grad((y * g).sum(), x, create_graph=True)[0] for y in (new, old)]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-13, atol=1e-13)
    x2 = torch.randn(x.shape, dtype=torch.float64, generator=gen, requires_grad=True)
    second = []
    for fn in (
        lambda t: ref(t, f, **kwargs),
        lambda t: _upfirdn2d_literal(t, f, up, down, padding, flip_filter, gain),
    ):
        y = fn(x2 * x2)  # a non-linear input, so the second derivative is not zero
        (gx,) = torch.autograd.grad((y * g).sum(), x2, create_graph=True)
        second.append(torch.autograd.grad(gx.square().sum(), x2)[0])
    torch.testing.assert_close(second[0], second[1], rtol=1e-12, atol=1e-12)


def test_upfirdn2d_reference_float32_close_to_literal_form():
    x = torch.randn(4, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    f = setup_filter([1, 3, 3, 1])
    for up, down, pad in (((1, 1), (2, 2), (1, 1, 1, 1)), ((1, 1), (1, 1), (2, 2, 2, 2))):
        new = upfirdn2d_ref(x, f, up=up, down=down, padding=pad)
        torch.testing.assert_close(new, _upfirdn2d_literal(x, f, up, down, pad, False, 1.0), rtol=1e-5, atol=1e-6)


def test_eager_fir_node_gradgradcheck():
    """The FIRReference node's first and second derivatives, numerically (float64)."""
    x = torch.randn(1, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1]).double()
    for kw in (dict(down=2, padding=1), dict(up=2, padding=[2, 1, 2, 1], gain=4), dict(padding=[1, 2, 0, 1])):
        fn = lambda t, kw=kw: upfirdn2d(t * t, f, impl="ref", **kw)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
        assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)


def test_r1_through_d_has_no_filter_gradient_convolutions():
    """R1's double backward through the eager FIR runs no per-channel filter-gradient convs
    (PyTorch's grouped-conv double backward loops over the channels, one conv each)."""
    from torch.profiler import profile

    x = torch.randn(4, 8, 16, 16, requires_grad=True)
    f = setup_filter([1, 3, 3, 1])
    w = torch.randn(8, 8, 3, 3, requires_grad=True)
    with profile() as prof:
        y = F.conv2d(upfirdn2d(x * x, f, down=2, padding=1, impl="ref"), w)
        (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        g.square().sum().backward()
    convs = sum(e.count for e in prof.key_averages() if e.key == "aten::convolution")
    assert convs <= 8, convs  # was 8 + one per channel (8) for the filter's gradient
