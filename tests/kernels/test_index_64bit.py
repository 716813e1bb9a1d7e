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
def _noise_probe(out_ptr, plane, offs0, O, W, snn, sno, snh, snw, NOISE_FLAT: tl.constexpr, INT64: tl.constexpr,
                 B: tl.constexpr):
    offs = offs0 + tl.arange(0, B)  # int32, as in the kernels
    out = noise_offset(plane.to(tl.int64), offs, O, W, snn, sno, snh, snw, NOISE_FLAT, INT64)
    tl.store(out_ptr + tl.arange(0, B), out.to(tl.int64))


def _run(kernel, device, *args, **meta):
    out = torch.zeros(B, dtype=torch.int64, device=device)
    kernel[(1,)](out, *args, **meta, B=B)
    return out.cpu()


@pytest.mark.parametrize("iy0, ix0, sxh, sxw", [
    (65536 - B, 0, 2**18, 1),  # 17e9: rows of a [2**16, 2**18] plane (1.7e10 elements)
    (4096 - B, 4096 - B, 2**20, 256),  # channels_last 4096x4096 with 256 channels: row stride 2**20
    (3, 2**20, 7, 2**14 + 1),  # a column stride past 2**31 / W
])
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


@pytest.mark.parametrize("flat, W, snh, snw", [
    (False, 64, 2**18, 1),  # noise rows of a wider buffer: [H, 2**18][:, :64]
    (True, 2**16, 2**17, 2),  # every other element of a buffer
])
def test_modconv_noise_offsets_are_64_bit(device, flat, W, snh, snw):
    O, plane, snn, sno = 32, 3 * 32 + 5, 0, 0  # noise [N, 1, H, W] broadcast over channels; batch 0
    offs0 = 2**16 * W - B if not flat else 2**30 + 7
    offs0 = min(offs0, 2**31 - 1 - B)
    want = torch.tensor([((offs0 + i) // W) * snh + ((offs0 + i) % W) * snw if not flat else (offs0 + i) * snw
                         for i in range(B)])
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
