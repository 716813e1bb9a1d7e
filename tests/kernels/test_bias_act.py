"""bias_act: the Triton kernels and their autograd Functions against the PyTorch reference."""

import pytest
import torch

from kernels.bias_act import ACTIVATIONS, KernelConfig, bias_act, bias_act_ref, bias_act_triton

ACTS = list(ACTIVATIONS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("act", ACTS)
def test_matches_reference(device, act, dtype):
    x = 3 * torch.randn(2, 5, 3, 7, dtype=dtype, device=device)  # odd sizes, values past the kinks
    b = torch.randn(5, dtype=dtype, device=device)
    for kwargs in (dict(b=b), dict(b=None, alpha=0.3, gain=1.7, clamp=0.8)):
        got = bias_act(x, act=act, impl="triton", **kwargs)
        want = bias_act_ref(
            x.double(), act=act, **{k: (v.double() if torch.is_tensor(v) else v) for k, v in kwargs.items()}
        )
        assert got.dtype == dtype
        tol = 1e-12 if dtype == torch.float64 else 2e-6
        torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape, dim", [((4, 6), 1), ((3, 2, 5), 0), ((2, 3, 4, 5), 2)])
def test_bias_along_any_dim_and_non_contiguous(device, shape, dim):
    x = torch.randn(*reversed(shape), dtype=torch.float64, device=device).permute(*reversed(range(len(shape))))
    assert x.shape == shape and not x.is_contiguous()
    b = torch.randn(shape[dim], dtype=torch.float64, device=device)
    got = bias_act(x, b, dim=dim, act="lrelu", clamp=1.0, impl="triton")
    torch.testing.assert_close(got, bias_act_ref(x, b, dim=dim, act="lrelu", clamp=1.0), rtol=1e-12, atol=1e-12)


def test_every_output_element_written(device):
    x = torch.randn(3, 5, 7, device=device)
    b = torch.randn(5, device=device)
    out = torch.full_like(x, float("nan"))
    bias_act_triton(x, b, KernelConfig.of("swish", None, None, None, 1), out=out)
    assert not out.isnan().any()
    torch.testing.assert_close(out, bias_act_ref(x, b, act="swish"))


def test_bf16_accepted_and_computed_in_fp32(device):
    x = torch.randn(2, 4, 5, 5, device=device).to(torch.bfloat16)
    b = torch.randn(4, device=device)  # a float32 bias is cast to x's dtype, as in the reference
    got = bias_act(x, b, act="lrelu", clamp=1.0, impl="triton")
    assert got.dtype == torch.bfloat16
    want = bias_act_ref(x.float(), b.bfloat16().float(), act="lrelu", clamp=1.0)
    torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-2)
    xg, bg = x.clone().requires_grad_(), b.clone().requires_grad_()
    gx, gb = torch.autograd.grad(bias_act(xg, bg, act="lrelu", clamp=1.0, impl="triton").sum(), [xg, bg])
    assert gx.dtype == torch.bfloat16 and gb.dtype == torch.float32  # gradients in their inputs' dtypes
    xr, br = x.float().requires_grad_(), b.bfloat16().float().requires_grad_()
    wx, wb = torch.autograd.grad(bias_act_ref(xr, br, act="lrelu", clamp=1.0).sum(), [xr, br])
    torch.testing.assert_close(gx.float(), wx, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(gb, wb, rtol=1e-2, atol=0.1)


@pytest.mark.parametrize("act", ACTS)
def test_gradcheck_and_gradgradcheck(device, act):
    x = torch.randn(2, 3, 4, dtype=torch.float64, device=device, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, device=device, requires_grad=True)
    # Move values off the kinks (relu/lrelu/elu at 0, clamp at +-1.1), where finite differences lie.
    with torch.no_grad():
        x += 0.2 * torch.sign(x + b[:, None])
    fn = lambda x, b: bias_act(
        x,
        b,
        act=act,
        clamp=1.1 if act in ("swish", "tanh") else None,  # noqa: E731
        impl="triton",
    )
    assert torch.autograd.gradcheck(fn, (x, b), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x, b), fast_mode=True)


def test_r1_style_penalty_gradients_match_reference(device):
    # R1: |d out / d x|^2, then its gradient w.r.t. the bias and the input (double backward).
    x0 = torch.randn(2, 3, 5, dtype=torch.float64, device=device)
    b0 = torch.randn(3, dtype=torch.float64, device=device)
    results = []
    for impl in ("triton", "ref"):
        x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
        y = bias_act(x, b, act="softplus", gain=1.3, impl=impl)
        (gx,) = torch.autograd.grad((y * y.detach().cos()).sum(), x, create_graph=True)
        results.append(torch.autograd.grad(gx.square().sum(), [x, b]))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_third_derivative_is_refused_clearly(device):
    # It would need the third derivative of the activation: an error beats silently missing terms.
    x = torch.randn(4, 3, dtype=torch.float64, device=device, requires_grad=True)
    y = bias_act(x, act="tanh", impl="triton").sum()
    (g1,) = torch.autograd.grad(y, x, create_graph=True)
    (g2,) = torch.autograd.grad(g1.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="third derivative.*impl='ref'"):
        torch.autograd.grad(g2.sum(), x)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(act="gelu"), "act="),
        (dict(x=torch.ones(3, 4, dtype=torch.int64)), "x must"),
        (dict(b=torch.ones(5)), "b must"),
        (dict(b=torch.ones(4, 1)), "b must"),
        (dict(dim=2), "dim="),
        (dict(alpha="0.2"), "alpha="),
        (dict(gain=[1.0]), "gain="),
        (dict(clamp="256"), "clamp="),
        (dict(impl="cuda"), "impl="),
    ],
)
@pytest.mark.parametrize("impl", ["ref", "triton"])
def test_bad_arguments_name_the_argument(device, kwargs, name, impl):
    args = dict(x=torch.ones(3, 4), b=torch.ones(4), impl=impl)
    args.update(kwargs)
    args = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
    with pytest.raises(ValueError, match=name):
        bias_act(**args)


@pytest.mark.parametrize("tile", [(2, 4), (8, 1), (1, 16)])
def test_many_small_tiles_cover_the_output(device, tile):
    # Test shapes fit one program by default; small tiles exercise the indexing a GPU uses
    # (several tiles per row, several rows per tile, partial tiles).
    x = torch.randn(2, 5, 3, 7, dtype=torch.float64, device=device)
    b = torch.randn(5, dtype=torch.float64, device=device)
    out = torch.full_like(x, float("nan"))
    bias_act_triton(x, b, KernelConfig.of("lrelu", None, None, 1.0, 1), out=out, tile=tile)
    torch.testing.assert_close(out, bias_act_ref(x, b, act="lrelu", clamp=1.0), rtol=1e-12, atol=1e-12)


def test_float32_parameters_travel_as_scalars():
    # A tensor per call would be a host-to-device copy, which PyTorch follows with a stream
    # synchronization: one per layer per step. Only the float64 (test) path may do that.
    assert KernelConfig.of("lrelu", None, None, 256, 1).params(torch.float32, "cpu").tensor is None
    p64 = KernelConfig.of("lrelu", None, None, 256, 1).params(torch.float64, "cpu")
    assert p64.tensor.dtype == torch.float64 and p64.tensor.tolist() == [0.2, 2**0.5, 256.0]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize(
    "kwargs",
    [dict(gain=0.7), dict(gain=1.9, clamp=0.9), dict(alpha=0.05, gain=1 / 3, clamp=2.5)],
    ids=["gain", "gain+clamp", "alpha+gain+clamp"],
)
def test_float64_parity_with_gains_and_clamps(device, act, kwargs):
    x = (3 * torch.randn(2, 5, 3, 7, dtype=torch.float64, device=device)).requires_grad_()
    b = torch.randn(5, dtype=torch.float64, device=device, requires_grad=True)
    got = bias_act(x, b, act=act, impl="triton", **kwargs)
    want = bias_act_ref(x, b, act=act, **kwargs)
    torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-15)
    g = torch.randn_like(want)
    for gg, gw in zip(torch.autograd.grad(got, [x, b], g), torch.autograd.grad(want, [x, b], g)):
        torch.testing.assert_close(gg, gw, rtol=1e-13, atol=1e-14)
