"""64-bit index arithmetic of upfirdn2d (within-image offsets) and of the modconv epilogue (noise
offsets), probed through the kernels' own jitted index helpers in one-program launches: strides
and positions of tensors past 2**31 elements that no CPU test could allocate. Each probe also
runs with INT64 off, to show the int32 arithmetic it replaces does wrap at these values (so the
test fails if the helpers stop widening)."""

import pytest
import torch
import triton  # tests/conftest.py has set TRITON_INTERPRET (no GPU) before this import
import triton.language as tl

from kernels.triton_ops.modconv import _noise_int64, noise_offset
from kernels.triton_ops.upfirdn2d import pixel_offset, plane_offset

B = 8


@triton.jit
def _pixel_probe(out_ptr, iy0, ix0, sxh, sxw, INT64: tl.constexpr, B: tl.constexpr):
    # Rows and columns arrive as int32 vectors, as in the kernel (aranges plus int32 scalars).
    iy = iy0 + tl.arange(0, B)
    ix = ix0 + tl.arange(0, B)
    tl.store(out_ptr + tl.arange(0, B), pixel_offset(iy, ix, sxh, sxw, INT64).to(tl.int64))


@triton.jit
def _plane_probe(out_ptr, p0, C, sxn, sxc, B: tl.constexpr):
    p = (p0 + tl.arange(0, B)).to(tl.int64)  # the kernel widens p under INT64
    tl.store(out_ptr + tl.arange(0, B), plane_offset(p, C, sxn, sxc).to(tl.int64))


@triton.jit
def _noise_probe(
    out_ptr, plane, offs0, O, W, snn, sno, snh, snw, NOISE_FLAT: tl.constexpr, INT64: tl.constexpr, B: tl.constexpr
):
    offs = offs0 + tl.arange(0, B)  # int32, as in the kernels
    out = noise_offset(plane.to(tl.int64), offs, O, W, snn, sno, snh, snw, NOISE_FLAT, INT64)
    tl.store(out_ptr + tl.arange(0, B), out.to(tl.int64))


def _run(kernel, device, *args, **meta):
    out = torch.zeros(B, dtype=torch.int64, device=device)
    kernel[(1,)](out, *args, **meta, B=B)
    return out.cpu()


@pytest.mark.parametrize(
    "iy0, ix0, sxh, sxw",
    [
        (65536 - B, 0, 2**18, 1),  # 17e9: rows of a [2**16, 2**18] plane (1.7e10 elements)
        (4096 - B, 4096 - B, 2**20, 256),  # channels_last 4096x4096 with 256 channels: row stride 2**20
        (3, 2**20, 7, 2**14 + 1),  # a column stride past 2**31 / W
    ],
)
def test_upfirdn2d_pixel_offsets_are_64_bit(device, iy0, ix0, sxh, sxw):
    want = torch.tensor([(iy0 + i) * sxh + (ix0 + i) * sxw for i in range(B)])
    assert want.max() >= 2**31  # the case is past int32
    assert torch.equal(_run(_pixel_probe, device, iy0, ix0, sxh, sxw, INT64=True), want)
    # The int32 arithmetic the helper replaces wraps here (what the kernel computed before).
    assert not torch.equal(_run(_pixel_probe, device, iy0, ix0, sxh, sxw, INT64=False), want)


def test_upfirdn2d_plane_offsets_are_64_bit(device):
    p0, C, sxn, sxc = 4096 - B, 512, 2**22 * 512, 2**22  # planes of 4M elements
    want = torch.tensor([((p0 + i) // C) * sxn + ((p0 + i) % C) * sxc for i in range(B)])
    assert want.max() >= 2**31
    assert torch.equal(_run(_plane_probe, device, p0, C, sxn, sxc), want)


@pytest.mark.parametrize(
    "flat, W, snh, snw",
    [
        (False, 64, 2**18, 1),  # noise rows of a wider buffer: [H, 2**18][:, :64]
        (True, 2**16, 2**17, 2),  # every other element of a buffer
    ],
)
def test_modconv_noise_offsets_are_64_bit(device, flat, W, snh, snw):
    O, plane, snn, sno = 32, 3 * 32 + 5, 0, 0  # noise [N, 1, H, W] broadcast over channels; batch 0
    offs0 = 2**16 * W - B if not flat else 2**30 + 7
    offs0 = min(offs0, 2**31 - 1 - B)
    want = torch.tensor(
        [((offs0 + i) // W) * snh + ((offs0 + i) % W) * snw if not flat else (offs0 + i) * snw for i in range(B)]
    )
    assert want.max() >= 2**31
    args = (plane, offs0, O, W, snn, sno, snh, snw)
    assert torch.equal(_run(_noise_probe, device, *args, NOISE_FLAT=flat, INT64=True), want)
    assert not torch.equal(_run(_noise_probe, device, *args, NOISE_FLAT=flat, INT64=False), want)


def test_noise_int64_flag_follows_the_noise_span():
    shape = (2, 4, 8, 8)
    small = torch.empty(2, 1, 8, 8)
    assert not _noise_int64(None, shape) and not _noise_int64(small, shape)
    # A view of a buffer past 2**31 elements (no memory: a zero-size storage would not do, so
    # fake the strides with as_strided on a meta tensor).
    big = torch.empty(0, device="meta").as_strided((2, 1, 8, 8), (2**31, 1, 2**20, 1))
    assert _noise_int64(big, shape)


def test_the_64_bit_paths_give_the_reference_results(device, monkeypatch):
    """Every kernel with INT64 on (the threshold lowered to 0), forward and backward, on strided
    inputs and noise: the int64 code paths end to end, at interpreter sizes."""
    import kernels
    from kernels.bias_act import bias_act_ref
    from kernels.modulated_conv2d import modulated_conv2d_ref
    from kernels.triton_ops import tiles
    from kernels.upfirdn2d import upfirdn2d_ref

    monkeypatch.setattr(tiles, "INT64_FROM", 0)
    assert tiles.needs_int64(1)
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(shape, generator=g).to(device)

    x = rand(2, 3, 9, 22)[:, :, :, ::2]  # non-contiguous columns: sxw = 2
    f = kernels.setup_filter([1, 3, 3, 1], device=device)
    for kw in (dict(up=2, padding=[2, 1, 2, 1], gain=4), dict(down=2, padding=[1, 1, 1, 1])):
        xt, xr = x.detach().requires_grad_(), x.detach().requires_grad_()
        yt, yr = kernels.upfirdn2d(xt, f, impl="triton", **kw), upfirdn2d_ref(xr, f, **kw)
        torch.testing.assert_close(yt, yr, rtol=1e-5, atol=1e-5)
        gy = rand(*yr.shape)
        torch.testing.assert_close(
            torch.autograd.grad(yt, xt, gy)[0], torch.autograd.grad(yr, xr, gy)[0], rtol=1e-5, atol=1e-5
        )

    xb, b = rand(2, 5, 4, 7), rand(5)
    for bias in (None, b):
        leaves_t = [xb.clone().requires_grad_()] + ([] if bias is None else [bias.clone().requires_grad_()])
        leaves_r = [t.detach().clone().requires_grad_() for t in leaves_t]
        yt = kernels.bias_act(*leaves_t, act="lrelu", clamp=1.0, impl="triton")
        yr = bias_act_ref(*leaves_r, act="lrelu", clamp=1.0)
        torch.testing.assert_close(yt, yr)
        gy = rand(*yr.shape)
        for a, w in zip(torch.autograd.grad(yt, leaves_t, gy), torch.autograd.grad(yr, leaves_r, gy)):
            torch.testing.assert_close(a, w, rtol=1e-5, atol=1e-5)

    xm, w, s, bm = rand(2, 4, 6, 6), rand(5, 4, 3, 3), rand(2, 4) + 1, rand(5)
    noise = rand(6, 20)[:, 3:9]  # [H, W] rows of a wider buffer: the strided (non-flat) noise path
    leaves_t = [t.clone().requires_grad_() for t in (xm, w, s, bm, noise)]
    leaves_r = [t.detach().clone().requires_grad_() for t in leaves_t]
    kw = dict(padding=1, fused_modconv=False, act="lrelu", clamp=2.0)
    yt = kernels.modulated_conv2d(*leaves_t[:3], noise=leaves_t[4], bias=leaves_t[3], impl="triton", **kw)
    yr = modulated_conv2d_ref(*leaves_r[:3], noise=leaves_r[4], bias=leaves_r[3], **kw)
    torch.testing.assert_close(yt, yr, rtol=1e-5, atol=1e-5)
    gy = rand(*yr.shape)
    for a, w_ in zip(torch.autograd.grad(yt, leaves_t, gy), torch.autograd.grad(yr, leaves_r, gy)):
        torch.testing.assert_close(a, w_, rtol=1e-4, atol=1e-4)
