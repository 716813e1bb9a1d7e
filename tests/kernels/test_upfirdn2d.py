"""upfirdn2d: the Triton kernel and its custom op (with its autograd) against the PyTorch reference."""

import sys

import pytest
import torch

import kernels
from kernels.upfirdn2d import check_args, upfirdn2d, upfirdn2d_ref, upfirdn2d_triton

# (up, down, padding, filter taps, separable, flip_filter, gain): every option at least once,
# odd input sizes throughout (the input is 2 x 3 x 7 x 9).
CASES = [
    (1, 1, 0, [1, 3, 3, 1], False, False, 1.0),
    (2, 1, [2, 1, 2, 1], [1, 3, 3, 1], False, False, 4.0),  # the generator's upsample2d
    (1, 2, [1, 1, 1, 1], [1, 3, 3, 1], True, False, 1.0),  # the discriminator's downsample2d
    ((2, 4), (1, 2), [3, -1, 2, 0], [1, 2, 3], False, True, 2.0),  # per-axis factors, crop, odd taps
    (4, (4, 2), [1, 2, 3, 4], [1, 2, 3, 4, 5], True, True, 0.5),
    (1, 4, [-1, 2, 0, -2], [[1.0, -2.0], [3.0, 0.5], [2.0, 1.0]], None, False, 1.0),  # 2-D, non-square
    (2, 2, 1, None, None, False, 3.0),  # no filter: pure zero-insert / pad / decimate
]


def _filter(taps, separable, dtype, device):
    if taps is None:
        return None
    if separable is None:  # explicit 2-D taps
        return torch.tensor(taps, dtype=dtype, device=device)
    return kernels.setup_filter(taps, separable=separable).to(dtype=dtype, device=device)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_matches_reference(device, case, dtype):
    up, down, pad, taps, separable, flip, gain = case
    x = torch.randn(2, 3, 7, 9, dtype=dtype, device=device)
    f = _filter(taps, separable, dtype, device)
    got = upfirdn2d(x, f, up, down, pad, flip, gain, impl="triton")
    want = upfirdn2d_ref(x.double().cpu(), None if f is None else f.double().cpu(), up, down, pad, flip, gain)
    assert got.dtype == dtype and got.shape == want.shape
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got.cpu().double(), want, rtol=tol, atol=tol)


def test_non_contiguous_input(device):
    base = torch.randn(2, 11, 3, 16, dtype=torch.float64, device=device)
    x = base.permute(0, 2, 1, 3)[..., ::2]  # [2, 3, 11, 8], strided in every dim but N
    assert not x.is_contiguous()
    f = kernels.setup_filter([1, 3, 3, 1]).to(device=device, dtype=torch.float64)
    got = upfirdn2d(x, f, 2, 1, [2, 1, 2, 1], impl="triton")
    torch.testing.assert_close(got, upfirdn2d_ref(x.contiguous(), f, 2, 1, [2, 1, 2, 1]), rtol=1e-12, atol=1e-12)


def test_every_output_element_written(device):
    x = torch.randn(2, 3, 7, 9, device=device)
    f = kernels.setup_filter([1, 3, 3, 1]).to(device)
    geom = check_args(x, f, 1, 2, [1, 2, 2, 1], 1)
    ow, oh = geom.out_size
    out = torch.full([2, 3, oh, ow], float("nan"), device=device)
    upfirdn2d_triton(x, f, geom, False, 1, out=out)
    assert not out.isnan().any()
    torch.testing.assert_close(out, upfirdn2d_ref(x, f, 1, 2, [1, 2, 2, 1]))


def test_bf16_accepted_and_computed_in_fp32(device):
    x = torch.randn(2, 3, 7, 9, device=device).to(torch.bfloat16)
    f = kernels.setup_filter([1, 3, 3, 1]).to(device)
    got = upfirdn2d(x, f, 2, 1, [2, 1, 2, 1], gain=4, impl="triton")
    assert got.dtype == torch.bfloat16
    want = upfirdn2d_ref(x.float(), f, 2, 1, [2, 1, 2, 1], gain=4)
    torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-2)  # one bf16 rounding of the output
    xg = x.clone().requires_grad_()
    (gx,) = torch.autograd.grad(upfirdn2d(xg, f, 2, 1, [2, 1, 2, 1], gain=4, impl="triton").sum(), xg)
    xr = x.float().requires_grad_()
    (want_gx,) = torch.autograd.grad(upfirdn2d_ref(xr, f, 2, 1, [2, 1, 2, 1], gain=4).sum(), xr)
    assert gx.dtype == torch.bfloat16
    torch.testing.assert_close(gx.float(), want_gx, rtol=1e-2, atol=2e-2)


@pytest.mark.parametrize("up, down, pad", [(2, 1, [2, 1, 2, 1]), ((1, 2), (2, 1), [1, 2, 0, 1])])
def test_gradcheck_and_gradgradcheck(device, up, down, pad):
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, device=device, requires_grad=True)
    f = kernels.setup_filter([1, 3, 3, 1]).to(device=device, dtype=torch.float64)
    fn = lambda x: upfirdn2d(x, f, up, down, pad, gain=2.0, impl="triton")  # noqa: E731
    assert torch.autograd.gradcheck(fn, x, fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, x, fast_mode=True)


def test_third_order_gradient_matches_reference(device):
    # The backward calls the same Function, so a gradient of a gradient of a gradient still works.
    f = kernels.setup_filter([1, 2, 1]).to(device=device, dtype=torch.float64)
    x0 = torch.randn(1, 2, 5, 7, dtype=torch.float64, device=device)
    results = []
    for impl in ("triton", "ref"):
        x = x0.clone().requires_grad_()
        y = upfirdn2d(x, f, 2, 1, [1, 1, 1, 1], impl=impl).pow(3).sum()
        (g1,) = torch.autograd.grad(y, x, create_graph=True)
        (g2,) = torch.autograd.grad(g1.pow(2).sum(), x, create_graph=True)
        (g3,) = torch.autograd.grad(g2.sin().sum(), x)
        results.append(g3)
    torch.testing.assert_close(results[0], results[1], rtol=1e-10, atol=1e-10)


def test_wrappers_match_reference(device):
    x = torch.randn(1, 2, 7, 5, dtype=torch.float64, device=device)
    f = kernels.setup_filter([1, 3, 3, 1]).to(device=device, dtype=torch.float64)
    for op in (kernels.upsample2d, kernels.downsample2d, kernels.filter2d):
        torch.testing.assert_close(op(x, f, impl="triton"), op(x, f, impl="ref"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(up=0), "up="),
        (dict(down=(2, 2.5)), "down="),
        (dict(up="2"), "up="),
        (dict(padding=[1, 2, 3]), "padding="),
        (dict(padding=-4), "padding="),
        (dict(f=torch.ones(2, 2, 2)), "f must"),
        (dict(f=torch.ones(3, dtype=torch.int64)), "f must"),
        (dict(x=torch.ones(3, 5, 5)), "x must"),
        (dict(x=torch.ones(1, 1, 5, 5, dtype=torch.int32)), "x must"),
        (dict(gain="2"), "gain="),
        (dict(impl="cuda"), "impl="),
    ],
)
@pytest.mark.parametrize("impl", ["ref", "triton"])
def test_bad_arguments_name_the_argument(device, kwargs, name, impl):
    args = dict(x=torch.ones(1, 1, 5, 5), f=kernels.setup_filter([1, 3, 3, 1]), impl=impl)
    args.update(kwargs)
    args = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
    with pytest.raises(ValueError, match=name):
        upfirdn2d(**args)


def test_auto_uses_reference_on_cpu_and_triton_needs_cuda_or_interpreter(monkeypatch):
    x = torch.randn(1, 1, 4, 4)
    called = []
    monkeypatch.setattr(sys.modules["kernels.upfirdn2d"], "upfirdn2d_op", lambda *a: called.append(a))
    upfirdn2d(x, None, impl="auto")
    assert called == []  # CPU tensors: the reference, even when the interpreter is on
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="impl='triton' needs CUDA"):
        upfirdn2d(x, None, impl="triton")


def test_filter_that_requires_grad_is_served_by_the_reference(device):
    # The Triton backward treats the filter as a constant; a trainable filter must still get its gradient.
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, device=device)
    f = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64, device=device, requires_grad=True)
    (gf,) = torch.autograd.grad(upfirdn2d(x, f, 2, 1, 1, impl="triton").square().sum(), f)
    (want,) = torch.autograd.grad(upfirdn2d_ref(x, f, 2, 1, 1).square().sum(), f)
    torch.testing.assert_close(gf, want)


def test_importing_kernels_does_not_import_triton():
    # Whether a kernel is compiled or interpreted is fixed when it is defined, and `import kernels`
    # must work where Triton is missing: Triton is imported on the first call that needs it.
    import subprocess
    import sys

    code = "import sys, kernels; assert 'triton' not in sys.modules, 'triton imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("tile", [(1, 4, 8), (2, 16, 4)])
def test_many_small_tiles_cover_the_output(device, tile):
    # Test shapes fit one program by default; small tiles exercise the tile indexing a GPU uses
    # (several tiles per plane, several planes per tile, partial tiles on every edge).
    x = torch.randn(1, 3, 5, 6, dtype=torch.float64, device=device)
    f = kernels.setup_filter([1, 3, 3, 1]).to(device=device, dtype=torch.float64)
    geom = check_args(x, f, 2, 1, [2, 1, 2, 1], 4)
    ow, oh = geom.out_size
    out = torch.full([1, 3, oh, ow], float("nan"), dtype=torch.float64, device=device)
    upfirdn2d_triton(x, f, geom, False, 4, out=out, tile=tile)
    torch.testing.assert_close(out, upfirdn2d_ref(x, f, 2, 1, [2, 1, 2, 1], gain=4), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("separable", [False, True])
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("gain", [0.3, 1 / 3, 4.0])
def test_float64_parity_with_gains_and_flips(device, separable, flip, gain):
    # The float32 filter of setup_filter (what the models hold) on float64 data: both paths must
    # scale the taps in float64. Before, the reference applied the gain in float32 (~1e-7 apart).
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64, device=device, requires_grad=True)
    f = kernels.setup_filter([1, 3, 3, 1], separable=separable).to(device)
    args = (2, (1, 2), [2, 1, 3, 0], flip, gain)
    got = upfirdn2d(x, f, *args, impl="triton")
    want = upfirdn2d_ref(x, f, *args)
    torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-15)
    g = torch.randn_like(want)
    torch.testing.assert_close(
        torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0], rtol=1e-14, atol=1e-15
    )
    # And both equal the same op on a float64 filter: the float64 path has no float32 step left.
    torch.testing.assert_close(want, upfirdn2d_ref(x, f.double(), *args), rtol=1e-14, atol=1e-15)


def test_float64_parity_without_filter_and_odd_gain(device):
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, device=device)
    torch.testing.assert_close(
        upfirdn2d(x, None, 2, 1, 1, gain=0.1, impl="triton"),
        upfirdn2d_ref(x, None, 2, 1, 1, gain=0.1),
        rtol=1e-15,
        atol=1e-16,
    )
    torch.testing.assert_close(upfirdn2d_ref(x, None, gain=0.1), x * 0.1, rtol=1e-15, atol=1e-16)
