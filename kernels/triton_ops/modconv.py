"""Epilogue of the modulated convolution in one pass over memory:
y = clamp(act(conv * scale[n, o] + noise + bias[o]) * gain), scale being the demodulation
coefficients (absent on the fused path, where they are folded into the weights).

The reference does this in four passes (demodulation multiply, noise add, bias_act); the
backward here also produces, in the same pass, per-program partial sums for the gradients of
the scale and the bias (summed by the caller: deterministic, no atomics).

Programs are laid out as (plane n*O + o, chunk of H*W), so scale and bias are one scalar
load per program and a partial sum never straddles two planes.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.triton_ops.bias_act import ACT_CODES, act_d1, act_fwd, clamp_mask


def block_size(hw: int) -> int:
    from kernels._dispatch import interpreting

    return min(triton.next_power_of_2(hw), 1 << 14) if interpreting() else 1024


@triton.jit
def _pre_activation(c, plane, offs, mask, s_ptr, n_ptr, b_ptr, O, W, snn, sno, snh, snw,
                    HAS_SCALE: tl.constexpr, HAS_NOISE: tl.constexpr, HAS_BIAS: tl.constexpr, ACC: tl.constexpr):
    z = c
    if HAS_SCALE:
        z = z * tl.load(s_ptr + plane).to(ACC)
    if HAS_NOISE:
        nptr = n_ptr + (plane // O) * snn + (plane % O) * sno + (offs // W) * snh + (offs % W) * snw
        z += tl.load(nptr, mask=mask, other=0.0).to(ACC)
    if HAS_BIAS:
        z += tl.load(b_ptr + plane % O).to(ACC)
    return z


@triton.jit
def _epilogue_fwd(c_ptr, s_ptr, n_ptr, b_ptr, p_ptr, out_ptr, O, HW, W, snn, sno, snh, snw,
                  HAS_SCALE: tl.constexpr, HAS_NOISE: tl.constexpr, HAS_BIAS: tl.constexpr, ACT: tl.constexpr,
                  CLAMP: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    plane = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < HW
    alpha, gain, clamp = tl.load(p_ptr), tl.load(p_ptr + 1), tl.load(p_ptr + 2)
    c = tl.load(c_ptr + plane * HW + offs, mask=mask, other=0.0).to(ACC)
    z = _pre_activation(c, plane, offs, mask, s_ptr, n_ptr, b_ptr, O, W, snn, sno, snh, snw,
                        HAS_SCALE, HAS_NOISE, HAS_BIAS, ACC)
    y = act_fwd(z, alpha, ACT) * gain
    if CLAMP:
        y = tl.minimum(tl.maximum(y, -clamp), clamp)
    tl.store(out_ptr + plane * HW + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _epilogue_bwd(g_ptr, c_ptr, s_ptr, n_ptr, b_ptr, p_ptr, gc_ptr, gz_ptr, ps_ptr, pb_ptr, O, HW, W, chunks,
                  snn, sno, snh, snw, HAS_SCALE: tl.constexpr, HAS_NOISE: tl.constexpr, HAS_BIAS: tl.constexpr,
                  WRITE_GZ: tl.constexpr, ACT: tl.constexpr, CLAMP: tl.constexpr, ACC: tl.constexpr,
                  BLOCK: tl.constexpr):
    # gz = g * act'(z) * gain * [clamp passes]; gc = gz * scale; partial sums of gz * c (for the
    # scale) and of gz (for the bias) per (plane, chunk); gz itself only when noise needs it.
    plane = tl.program_id(0).to(tl.int64)
    chunk = tl.program_id(1)
    offs = chunk * BLOCK + tl.arange(0, BLOCK)
    mask = offs < HW
    alpha, gain, clamp = tl.load(p_ptr), tl.load(p_ptr + 1), tl.load(p_ptr + 2)
    c = tl.load(c_ptr + plane * HW + offs, mask=mask, other=0.0).to(ACC)
    z = _pre_activation(c, plane, offs, mask, s_ptr, n_ptr, b_ptr, O, W, snn, sno, snh, snw,
                        HAS_SCALE, HAS_NOISE, HAS_BIAS, ACC)
    g = tl.load(g_ptr + plane * HW + offs, mask=mask, other=0.0).to(ACC)
    gz = g * act_d1(z, alpha, ACT) * clamp_mask(act_fwd(z, alpha, ACT) * gain, clamp, CLAMP) * gain
    gz = tl.where(mask, gz, 0.0)
    if HAS_SCALE:
        gc = gz * tl.load(s_ptr + plane).to(ACC)
        tl.store(ps_ptr + plane * chunks + chunk, tl.sum(gz * c, axis=0))
    else:
        gc = gz
    tl.store(gc_ptr + plane * HW + offs, gc.to(gc_ptr.dtype.element_ty), mask=mask)
    if WRITE_GZ:
        tl.store(gz_ptr + plane * HW + offs, gz.to(gz_ptr.dtype.element_ty), mask=mask)
    if HAS_BIAS:
        tl.store(pb_ptr + plane * chunks + chunk, tl.sum(gz, axis=0))


_TL_ACC = {torch.float64: tl.float64, torch.float32: tl.float32}


def _noise_strides(noise, shape):
    return (0, 0, 0, 0) if noise is None else noise.expand(shape).stride()


def launch_fwd(c, scale, noise, bias, params, out, *, act, clamp):
    """c, out [N, O, H, W] contiguous; scale [N, O] contiguous or None; noise broadcastable to
    c (any strides) or None; bias [O] or None; params [alpha, gain, clamp] in the acc dtype."""
    N, O, H, W = c.shape
    block = block_size(H * W)
    _epilogue_fwd[(N * O, triton.cdiv(H * W, block))](
        c, c if scale is None else scale, c if noise is None else noise, c if bias is None else bias, params, out,
        O, H * W, W, *_noise_strides(noise, c.shape), HAS_SCALE=scale is not None, HAS_NOISE=noise is not None,
        HAS_BIAS=bias is not None, ACT=ACT_CODES[act], CLAMP=clamp, ACC=_TL_ACC[params.dtype], BLOCK=block)
    return out


def launch_bwd(g, c, scale, noise, bias, params, *, act, clamp, want_gz):
    """-> (gc, gz or None, gscale [N, O] or None, gbias per plane [N, O] or None), sums in acc dtype."""
    N, O, H, W = c.shape
    block = block_size(H * W)
    chunks = triton.cdiv(H * W, block)
    gc = torch.empty_like(c)
    gz = torch.empty_like(c) if want_gz else None
    ps = torch.empty([N * O, chunks], dtype=params.dtype, device=c.device) if scale is not None else None
    pb = torch.empty([N * O, chunks], dtype=params.dtype, device=c.device) if bias is not None else None
    _epilogue_bwd[(N * O, chunks)](
        g, c, c if scale is None else scale, c if noise is None else noise, c if bias is None else bias, params,
        gc, gc if gz is None else gz, params if ps is None else ps, params if pb is None else pb, O, H * W, W, chunks,
        *_noise_strides(noise, c.shape), HAS_SCALE=scale is not None, HAS_NOISE=noise is not None,
        HAS_BIAS=bias is not None, WRITE_GZ=want_gz, ACT=ACT_CODES[act], CLAMP=clamp, ACC=_TL_ACC[params.dtype],
        BLOCK=block)
    gscale = None if ps is None else ps.sum(1).reshape(N, O)
    gbias = None if pb is None else pb.sum(1).reshape(N, O)
    return gc, gz, gscale, gbias
