"""Polyphase upfirdn2d kernel: out[n, c, oy, ox] = sum of f'[ky, kx] * xu[oy*dy + ky - py0, ox*dx + kx - px0]
over the taps, where xu is x with up-1 zeros inserted after every pixel and f' the filter as
correlated (already flipped, gain folded in, by the caller).

Only taps that land on a real (not inserted) pixel are visited: for an output row, the first
such tap is k0 = (py0 - oy*dy) mod up, then every up-th one, so a 4-tap filter at up=2 costs 2
taps per axis, and the zero-inserted image is never built.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.triton_ops.device import on_device
from kernels.triton_ops.tiles import needs_int64, tile_shape


@triton.jit
def plane_offset(p, C, sxn, sxc):
    """Offset of plane p = n*C + c of x (p is int64 when 64-bit indexing is on)."""
    return (p // C) * sxn + (p % C) * sxc


@triton.jit
def pixel_offset(iy, ix, sxh, sxw, INT64: tl.constexpr):
    """Offset of pixel (iy, ix) within a plane. With INT64 the rows and columns are widened
    before the products: a plane's own offsets pass 2**31 for large strided inputs (a
    channels_last 4096x4096 image with 256 channels has a row stride of 2**20), even when every
    index and stride fits in int32. Separate from the kernel so tests can probe it."""
    if INT64:
        iy = iy.to(tl.int64)
        ix = ix.to(tl.int64)
    return iy * sxh + ix * sxw


@triton.jit
def upfirdn2d_kernel(
    x_ptr,
    fy_ptr,
    fx_ptr,
    out_ptr,
    P,
    C,
    H,
    W,
    OH,
    OW,
    sxn,
    sxc,
    sxh,
    sxw,
    tiles_y,
    tiles_x,
    UPX: tl.constexpr,
    UPY: tl.constexpr,
    DOWNX: tl.constexpr,
    DOWNY: tl.constexpr,
    PX0: tl.constexpr,
    PY0: tl.constexpr,
    FW: tl.constexpr,
    FH: tl.constexpr,
    SEPARABLE: tl.constexpr,
    ACC: tl.constexpr,
    INT64: tl.constexpr,
    BP: tl.constexpr,
    BH: tl.constexpr,
    BW: tl.constexpr,
):
    # A [BP, BH, BW] tile of the contiguous output [N*C, OH, OW]. Rows and columns come from
    # aranges, so no lane divides by a runtime size (that would make this memory-bound kernel
    # compute-bound); only the plane index is split into (n, c), on a [BP, 1, 1] vector.
    pid = tl.program_id(0)
    tx = pid % tiles_x
    ty = (pid // tiles_x) % tiles_y
    tp = pid // (tiles_x * tiles_y)
    p = tp * BP + tl.arange(0, BP)[:, None, None]
    if INT64:
        p = p.to(tl.int64)
    oy = ty * BH + tl.arange(0, BH)[None, :, None]
    ox = tx * BW + tl.arange(0, BW)[None, None, :]
    out_mask = (p < P) & (oy < OH) & (ox < OW)
    x_base = x_ptr + plane_offset(p, C, sxn, sxc)
    # Position in the zero-inserted frame of tap 0, and the first tap on a real pixel. The
    # double mod gives [0, UP) under both C (GPU) and floor (numpy interpreter) semantics of %.
    by = oy * DOWNY - PY0
    bx = ox * DOWNX - PX0
    k0y = ((-by) % UPY + UPY) % UPY
    k0x = ((-bx) % UPX + UPX) % UPX
    acc = tl.zeros([BP, BH, BW], dtype=ACC)
    for ty_ in tl.static_range((FH + UPY - 1) // UPY):
        ky = k0y + ty_ * UPY
        iy = (by + ky) // UPY  # exact: by + ky is a multiple of UPY
        row_ok = (ky < FH) & (iy >= 0) & (iy < H)
        if SEPARABLE:
            wy = tl.load(fy_ptr + ky, mask=ky < FH, other=0.0)
        for tx_ in tl.static_range((FW + UPX - 1) // UPX):
            kx = k0x + tx_ * UPX
            ix = (bx + kx) // UPX
            col_ok = (kx < FW) & (ix >= 0) & (ix < W)
            v = tl.load(x_base + pixel_offset(iy, ix, sxh, sxw, INT64), mask=out_mask & row_ok & col_ok, other=0.0).to(
                ACC
            )
            if SEPARABLE:
                w = wy * tl.load(fx_ptr + kx, mask=kx < FW, other=0.0)
            else:
                w = tl.load(fy_ptr + ky * FW + kx, mask=(ky < FH) & (kx < FW), other=0.0)
            acc += v * w
    tl.store(out_ptr + (p * OH + oy) * OW + ox, acc.to(out_ptr.dtype.element_ty), mask=out_mask)


_TL_ACC = {torch.float64: tl.float64, torch.float32: tl.float32}


def launch(
    x: torch.Tensor,
    fy: torch.Tensor,
    fx: torch.Tensor | None,
    out: torch.Tensor,
    *,
    up: tuple[int, int],
    down: tuple[int, int],
    pad0: tuple[int, int],
    fsize: tuple[int, int],
    tile=None,
) -> torch.Tensor:
    """Fill `out` [N, C, OH, OW] (contiguous). `fy`/`fx`: the two 1-D taps of a separable filter,
    or `fy` the 2-D filter [FH, FW] and `fx` None; both already flipped and scaled, in the
    accumulation dtype. `up`, `down`, `pad0`, `fsize` are (x, y) pairs. `tile` (planes, rows,
    columns; powers of 2) overrides tiles.tile_shape, so tests can cover many tiles with tiny shapes."""
    N, C, H, W = x.shape
    OH, OW = out.shape[2:]
    assert out.is_contiguous() and out.shape[:2] == x.shape[:2]
    # A row segment of up to 256 columns first, then rows, then planes (small layers).
    bp, bh, bw = tile or tile_shape(N * C, OH, OW, caps=(None, None, 256))
    tiles_y, tiles_x = triton.cdiv(OH, bh), triton.cdiv(OW, bw)
    reach = max(out.numel(), sum((d - 1) * st for d, st in zip(x.shape, x.stride())) + 1)
    with on_device(out):
        upfirdn2d_kernel[(triton.cdiv(N * C, bp) * tiles_y * tiles_x,)](
            x,
            fy,
            fy if fx is None else fx,
            out,
            N * C,
            C,
            H,
            W,
            OH,
            OW,
            *x.stride(),
            tiles_y,
            tiles_x,
            UPX=up[0],
            UPY=up[1],
            DOWNX=down[0],
            DOWNY=down[1],
            PX0=pad0[0],
            PY0=pad0[1],
            FW=fsize[0],
            FH=fsize[1],
            SEPARABLE=fx is not None,
            ACC=_TL_ACC[fy.dtype],
            INT64=needs_int64(reach),
            BP=bp,
            BH=bh,
            BW=bw,
        )
    return out
