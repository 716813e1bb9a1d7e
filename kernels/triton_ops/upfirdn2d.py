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


def block_size(numel: int) -> int:
    """Output elements per program. On a GPU 1024 (4 warps x 8 per thread); under the
    interpreter, where each program costs milliseconds, the whole (tiny) test tensor at once."""
    from kernels._dispatch import interpreting

    return min(triton.next_power_of_2(numel), 1 << 14) if interpreting() else 1024


@triton.jit
def _upfirdn2d_kernel(x_ptr, fy_ptr, fx_ptr, out_ptr, total,
                      C, H, W, OH, OW, sxn, sxc, sxh, sxw,
                      UPX: tl.constexpr, UPY: tl.constexpr, DOWNX: tl.constexpr, DOWNY: tl.constexpr,
                      PX0: tl.constexpr, PY0: tl.constexpr, FW: tl.constexpr, FH: tl.constexpr,
                      SEPARABLE: tl.constexpr, ACC: tl.constexpr, INT64: tl.constexpr, BLOCK: tl.constexpr):
    # One flat block of the contiguous output [N, C, OH, OW]: consecutive lanes are consecutive
    # columns, so loads and stores coalesce on a GPU, and blocks may span planes.
    pid = tl.program_id(0)
    if INT64:
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        offs = pid * BLOCK + tl.arange(0, BLOCK)
    out_mask = offs < total
    ox = offs % OW
    oy = (offs // OW) % OH
    plane = offs // (OW * OH)
    x_base = x_ptr + (plane // C) * sxn + (plane % C) * sxc
    # Position in the zero-inserted frame of tap 0, and the first tap on a real pixel. The
    # double mod gives [0, UP) under both C (GPU) and floor (numpy interpreter) semantics of %.
    by = oy * DOWNY - PY0
    bx = ox * DOWNX - PX0
    k0y = ((-by) % UPY + UPY) % UPY
    k0x = ((-bx) % UPX + UPX) % UPX
    acc = tl.zeros([BLOCK], dtype=ACC)
    for ty in tl.static_range((FH + UPY - 1) // UPY):
        ky = k0y + ty * UPY
        iy = (by + ky) // UPY  # exact: by + ky is a multiple of UPY
        row_ok = out_mask & (ky < FH) & (iy >= 0) & (iy < H)
        if SEPARABLE:
            wy = tl.load(fy_ptr + ky, mask=row_ok, other=0.0)
        for tx in tl.static_range((FW + UPX - 1) // UPX):
            kx = k0x + tx * UPX
            ix = (bx + kx) // UPX
            ok = row_ok & (kx < FW) & (ix >= 0) & (ix < W)
            v = tl.load(x_base + iy * sxh + ix * sxw, mask=ok, other=0.0).to(ACC)
            if SEPARABLE:
                w = wy * tl.load(fx_ptr + kx, mask=ok, other=0.0)
            else:
                w = tl.load(fy_ptr + ky * FW + kx, mask=ok, other=0.0)
            acc += v * w
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=out_mask)


_TL_ACC = {torch.float64: tl.float64, torch.float32: tl.float32}


def launch(x: torch.Tensor, fy: torch.Tensor, fx: torch.Tensor | None, out: torch.Tensor, *, up: tuple[int, int],
           down: tuple[int, int], pad0: tuple[int, int], fsize: tuple[int, int]) -> torch.Tensor:
    """Fill `out` [N, C, OH, OW] (contiguous). `fy`/`fx`: the two 1-D taps of a separable filter,
    or `fy` the 2-D filter [FH, FW] and `fx` None; both already flipped and scaled, in the
    accumulation dtype. `up`, `down`, `pad0`, `fsize` are (x, y) pairs."""
    N, C, H, W = x.shape
    OH, OW = out.shape[2:]
    assert out.is_contiguous() and out.shape[:2] == x.shape[:2]
    total = out.numel()
    block = block_size(total)
    reach = max(total, sum((d - 1) * st for d, st in zip(x.shape, x.stride())) + 1)
    _upfirdn2d_kernel[(triton.cdiv(total, block),)](
        x, fy, fy if fx is None else fx, out, total, C, H, W, OH, OW, *x.stride(),
        UPX=up[0], UPY=up[1], DOWNX=down[0], DOWNY=down[1], PX0=pad0[0], PY0=pad0[1], FW=fsize[0], FH=fsize[1],
        SEPARABLE=fx is not None, ACC=_TL_ACC[fy.dtype], INT64=reach >= 2**31 - 1, BLOCK=block)
    return out
