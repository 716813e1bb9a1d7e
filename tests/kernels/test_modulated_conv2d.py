"""modulated_conv2d: the Triton path (cuDNN/torch conv + fused epilogue kernel) against the reference."""

import pytest
import torch

import kernels
from kernels.bias_act import KernelConfig
from kernels.modulated_conv2d import epilogue_ref, epilogue_triton, modulated_conv2d, modulated_conv2d_ref


def _inputs(device, dtype, up=1, N=2, I=3, O=4, H=5, k=3, noise_shape="n1hw", requires_grad=False):
    g = dict(dtype=dtype, device=device)
    x, w, s = torch.randn(N, I, H, H, **g), torch.randn(O, I, k, k, **g), torch.randn(N, I, **g) + 1
    out = H * up
    noise = {"n1hw": torch.randn(N, 1, out, out, **g), "hw": torch.randn(out, out, **g), None: None}[noise_shape]
    b = torch.randn(O, **g)
    ts = [x, w, s, noise, b]
    return [t.requires_grad_() if (requires_grad and t is not None) else t for t in ts]


def _kwargs(up, fused, **extra):
    f = kernels.setup_filter([1, 3, 3, 1])
    return dict(up=up, padding=1, resample_filter=f, flip_weight=(up == 1), fused_modconv=fused, **extra)


# (up, fused, demodulate, act, clamp, noise): the generator's layers (3x3 conv, 2x up conv,
# 1x1 toRGB without demodulation) on both the fused and the non-fused path.
CASES = [
    (1, False, True, "lrelu", 2.0, "n1hw"),
    (2, False, True, "lrelu", None, "hw"),
    (1, True, True, "swish", 1.5, "n1hw"),
    (2, True, False, "linear", None, None),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_forward_and_gradients_match_reference(device, case, dtype):
    up, fused, demod, act, clamp, noise_shape = case
    x, w, s, noise, b = _inputs(device, dtype, up=up, noise_shape=noise_shape, requires_grad=True)
    kw = _kwargs(up, fused, demodulate=demod, act=act, clamp=clamp)
    kw["resample_filter"] = kw["resample_filter"].to(device)
    leaves = [t for t in (x, w, s, noise, b) if t is not None]
    results = []
    for impl in ("triton", "ref"):
        y = modulated_conv2d(x, w, s, noise=noise, bias=b, impl=impl, **kw)
        results.append([y, *torch.autograd.grad((y * y.detach().cos()).sum(), leaves)])
    tol = 1e-11 if dtype == torch.float64 else 2e-4
    for got, want in zip(*results):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_gradcheck_and_gradgradcheck(device):
    x, w, s, noise, b = _inputs(device, torch.float64, N=1, I=2, O=2, H=3, requires_grad=True)
    kw = _kwargs(1, False, act="softplus", gain=1.3)
    fn = lambda x, w, s, noise, b: modulated_conv2d(x, w, s, noise=noise, bias=b, impl="triton", **kw)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, s, noise, b), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x, w, s, noise, b), fast_mode=True)


@pytest.mark.parametrize("fused", [False, True])
def test_path_length_double_backward_falls_back_to_reference(device, fused):
    # Path-length regularization: grad of (img * noise).sum() w.r.t. the styles with
    # create_graph=True, then backward to the weights. The epilogue's backward runs the
    # reference when it is itself recorded; the result must match the reference throughout.
    x0, w0, s0, noise, b0 = _inputs(device, torch.float64, up=2)
    kw = _kwargs(2, fused, act="lrelu")
    kw["resample_filter"] = kw["resample_filter"].to(device)
    results = []
    for impl in ("triton", "ref"):
        w, s, b = (t.clone().requires_grad_() for t in (w0, s0, b0))
        img = modulated_conv2d(x0, w, s, noise=noise, bias=b, impl=impl, **kw)
        (gs,) = torch.autograd.grad((img * img.detach().sin()).sum(), s, create_graph=True)
        results.append(torch.autograd.grad(gs.square().sum(), [w, b]))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_epilogue_writes_every_element(device):
    c = torch.randn(2, 3, 5, 7, device=device)
    scale, bias = torch.rand(2, 3, device=device), torch.randn(3, device=device)
    noise = torch.randn(7, 5, device=device).t()  # strided rows: the kernel's general noise indexing
    out = torch.full_like(c, float("nan"))
    epilogue_triton(c, scale, noise, bias, KernelConfig.of("lrelu", None, None, 0.5, 1), out=out)
    assert not out.isnan().any()
    torch.testing.assert_close(out, epilogue_ref(c, scale, noise, bias, "lrelu", None, None, 0.5))


def test_non_contiguous_input_and_bf16(device):
    x, w, s, noise, b = _inputs(device, torch.float32)
    x = x.transpose(2, 3)  # a non-contiguous view
    kw = _kwargs(1, False, act="lrelu")
    kw["resample_filter"] = kw["resample_filter"].to(device)
    want = modulated_conv2d_ref(x, w, s, noise=noise, bias=b, **kw)
    torch.testing.assert_close(
        modulated_conv2d(x, w, s, noise=noise, bias=b, impl="triton", **kw), want, rtol=2e-4, atol=2e-4
    )
    leaves = [t.bfloat16().requires_grad_() for t in (x, w, s, noise, b)]
    got = modulated_conv2d(*leaves[:3], noise=leaves[3], bias=leaves[4], impl="triton", **kw)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=0.1, atol=0.1)  # bf16 conv and inputs
    grads = torch.autograd.grad(got.float().sum(), leaves)
    assert all(g.dtype == torch.bfloat16 and g.isfinite().all() for g in grads)


@pytest.mark.parametrize(
    "change, name",
    [
        (dict(styles=torch.ones(2, 4)), "channel mismatch"),
        (dict(x=torch.ones(2, 3, 5)), "x must"),
        (dict(weight=torch.ones(4, 3, 3, 3, dtype=torch.int64)), "weight must"),
        (dict(noise=torch.ones(2, 2, 5, 5)), "noise"),
        (dict(bias=torch.ones(3)), "bias must"),
        (dict(act="gelu"), "act="),
        (dict(clamp="1"), "clamp="),
        (dict(impl="fast"), "impl="),
    ],
)
@pytest.mark.parametrize("impl", ["ref", "triton"])
def test_bad_arguments_name_the_argument(device, change, name, impl):
    args = dict(x=torch.ones(2, 3, 5, 5), weight=torch.ones(4, 3, 3, 3), styles=torch.ones(2, 3), padding=1, impl=impl)
    args.update(change)
    args = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
    with pytest.raises(ValueError, match=name):
        modulated_conv2d(**args)


@pytest.mark.parametrize("groups", [1, 2, 5])  # 5 channels in 2 groups: the last one is partial
@pytest.mark.parametrize("noise_shape", [(2, 1, 3, 4), (3, 4), (2, 5, 3, 4), "transposed"])  # shared, per channel
def test_epilogue_backward_channel_groups_and_noise_gradient(device, groups, noise_shape):
    from kernels.triton_ops import modconv as tk

    g64 = dict(dtype=torch.float64, device=device)
    c, g = torch.randn(2, 5, 3, 4, **g64), torch.randn(2, 5, 3, 4, **g64)
    noise = torch.randn(4, 3, **g64).t() if noise_shape == "transposed" else torch.randn(noise_shape, **g64)
    scale, bias = torch.rand(2, 5, **g64) + 0.5, torch.randn(5, **g64)
    cfg = KernelConfig.of("lrelu", None, None, 1.5, 1)
    gc, gnoise, gscale, gbias = tk.launch_bwd(
        g,
        c,
        scale,
        noise,
        bias,
        cfg.params(torch.float64, device),
        act="lrelu",
        clamp=True,
        want_noise_grad=True,
        groups=groups,
    )
    leaves = [t.clone().requires_grad_() for t in (c, scale, noise, bias)]
    want = torch.autograd.grad(epilogue_ref(*leaves, "lrelu", None, None, 1.5), leaves, g)
    for got, w in zip((gc, gscale, gnoise, gbias.sum(0)), want):
        assert got.shape == w.shape
        torch.testing.assert_close(got, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("up, flip_weight", [(1, True), (1, False), (2, False), (2, True)])
@pytest.mark.parametrize(
    "extra",
    [dict(gain=0.6), dict(gain=1.7, clamp=0.8), dict(act="swish", gain=1 / 3, clamp=1.1)],
    ids=["gain", "gain+clamp", "swish+gain+clamp"],
)
def test_float64_parity_with_gains_clamps_and_flips(device, fused, up, flip_weight, extra):
    x, w, s, noise, b = _inputs(device, torch.float64, up=up, requires_grad=True)
    kw = dict(
        up=up,
        padding=1,
        resample_filter=kernels.setup_filter([1, 3, 3, 1]).to(device),
        flip_weight=flip_weight,
        fused_modconv=fused,
        bias=b,
        noise=noise,
        **{"act": "lrelu", **extra},
    )
    leaves = [x, w, s, noise, b]
    results = []
    for impl in ("triton", "ref"):
        y = modulated_conv2d(x, w, s, impl=impl, **kw)
        results.append([y, *torch.autograd.grad((y * y.detach().cos()).sum(), leaves)])
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)
