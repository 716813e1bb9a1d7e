"""Epilogue of the modulated convolution in one pass over memory:
y = clamp(act(conv * scale[n, o] + noise + bias[o]) * gain), scale being the demodulation
coefficients (absent on the fused path, where they are folded into the weights).

The reference does this in four passes (demodulation multiply, noise add, bias_act). The
backward is one pass too: it writes the conv-output gradient and, in the same pass, partial
sums for the gradients of the scale, the bias and the noise (summed by the caller:
deterministic, no atomics).

Forward programs are (plane n*O + o, chunk of H*W), so scale and bias are one scalar load per
program; backward programs loop over a group of channels so the noise gradient (noise is
shared by all channels) is reduced in registers.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.activations import kernel_code
from kernels.triton_ops.bias_act import act_d1, act_fwd, clamp_mask, load_params, param_args
from kernels.triton_ops.device import on_device
from kernels.triton_ops.tiles import needs_int64, tile_shape


@triton.jit
def noise_offset(plane, offs, O, W, snn, sno, snh, snw, NOISE_FLAT: tl.constexpr, INT64: tl.constexpr):
    """Offset into the noise (any strides, broadcast to [N, O, H, W]) of element `offs` of the
    int64 `plane` = n*O + o. With INT64 (the noise spans 2**31 elements or more, e.g. a view of
    a larger buffer) the in-plane index is widened before the stride products, which would pass
    2**31 in int32. Separate from the kernels so tests can probe it."""
    if INT64:
        offs = offs.to(tl.int64)
    base = (plane // O) * snn + (plane % O) * sno
    if NOISE_FLAT:  # rows of the noise are contiguous in H*W: no per-lane division
        return base + offs * snw
    return base + (offs // W) * snh + (offs % W) * snw


@triton.jit
def _pre_activation(
    c,
    plane,
    offs,
    mask,
    s_ptr,
    n_ptr,
    b_ptr,
    O,
    W,
    snn,
    sno,
    snh,
    snw,
    HAS_SCALE: tl.constexpr,
    HAS_NOISE: tl.constexpr,
    NOISE_FLAT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    ACC: tl.constexpr,
    INT64: tl.constexpr,
):
    z = c
    if HAS_SCALE:
        z = z * tl.load(s_ptr + plane).to(ACC)
    if HAS_NOISE:
        nptr = n_ptr + noise_offset(plane, offs, O, W, snn, sno, snh, snw, NOISE_FLAT, INT64)
        z += tl.load(nptr, mask=mask, other=0.0).to(ACC)
    if HAS_BIAS:
        z += tl.load(b_ptr + plane % O).to(ACC)
    return z


@triton.jit
def epilogue_fwd_kernel(
    c_ptr,
    s_ptr,
    n_ptr,
    b_ptr,
    p_ptr,
    out_ptr,
    O,
    HW,
    W,
    snn,
    sno,
    snh,
    snw,
    alpha,
    gain,
    clamp,
    P_PTR: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    HAS_NOISE: tl.constexpr,
    NOISE_FLAT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    ACT: tl.constexpr,
    CLAMP: tl.constexpr,
    ACC: tl.constexpr,
    INT64: tl.constexpr,
    BLOCK: tl.constexpr,
):
    plane = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < HW
    alpha, gain, clamp = load_params(p_ptr, alpha, gain, clamp, P_PTR)
    c = tl.load(c_ptr + plane * HW + offs, mask=mask, other=0.0).to(ACC)
    z = _pre_activation(
        c,
        plane,
        offs,
        mask,
        s_ptr,
        n_ptr,
        b_ptr,
        O,
        W,
        snn,
        sno,
        snh,
        snw,
        HAS_SCALE,
        HAS_NOISE,
        NOISE_FLAT,
        HAS_BIAS,
        ACC,
        INT64,
    )
    y = act_fwd(z, alpha, ACT) * gain
    if CLAMP:
        y = tl.minimum(tl.maximum(y, -clamp), clamp)
    tl.store(out_ptr + plane * HW + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def epilogue_bwd_kernel(
    g_ptr,
    c_ptr,
    s_ptr,
    n_ptr,
    b_ptr,
    p_ptr,
    gc_ptr,
    gn_ptr,
    ps_ptr,
    pb_ptr,
    O,
    HW,
    W,
    chunks,
    groups,
    per_group,
    snn,
    sno,
    snh,
    snw,
    alpha,
    gain,
    clamp,
    P_PTR: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    HAS_NOISE: tl.constexpr,
    NOISE_FLAT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    NOISE_GRAD: tl.constexpr,
    ACT: tl.constexpr,
    CLAMP: tl.constexpr,
    ACC: tl.constexpr,
    INT64: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # Program (n, group of channels, chunk of H*W), looping over its channels:
    #   gz = g * act'(z) * gain * [clamp passes]; gc = gz * scale, stored;
    #   per (plane, chunk): partial sums of gz * c (scale gradient) and gz (bias gradient);
    #   NOISE_GRAD 1: noise shared by all channels -> sum of gz over this group's channels,
    #                 stored per (n, group) (the caller sums the groups);
    #   NOISE_GRAD 2: noise differs per channel -> gz itself, stored in gn.
    # Looping over channels inside the program is what lets the noise gradient be reduced
    # without writing gz and reading it back.
    pid = tl.program_id(0)
    n = pid // groups
    grp = pid % groups
    chunk = tl.program_id(1)
    offs = chunk * BLOCK + tl.arange(0, BLOCK)
    mask = offs < HW
    alpha, gain, clamp = load_params(p_ptr, alpha, gain, clamp, P_PTR)
    gn_acc = tl.zeros([BLOCK], dtype=ACC)
    o_start = grp * per_group
    o_end = tl.minimum(o_start + per_group, O)
    for o in range(o_start, o_end):
        plane = (n * O + o).to(tl.int64)
        c = tl.load(c_ptr + plane * HW + offs, mask=mask, other=0.0).to(ACC)
        z = _pre_activation(
            c,
            plane,
            offs,
            mask,
            s_ptr,
            n_ptr,
            b_ptr,
            O,
            W,
            snn,
            sno,
            snh,
            snw,
            HAS_SCALE,
            HAS_NOISE,
            NOISE_FLAT,
            HAS_BIAS,
            ACC,
            INT64,
        )
        g = tl.load(g_ptr + plane * HW + offs, mask=mask, other=0.0).to(ACC)
        gz = g * act_d1(z, alpha, ACT) * clamp_mask(act_fwd(z, alpha, ACT) * gain, clamp, CLAMP) * gain
        gz = tl.where(mask, gz, 0.0)
        if HAS_SCALE:
            gc = gz * tl.load(s_ptr + plane).to(ACC)
            tl.store(ps_ptr + plane * chunks + chunk, tl.sum(gz * c, axis=0))
        else:
            gc = gz
        tl.store(gc_ptr + plane * HW + offs, gc.to(gc_ptr.dtype.element_ty), mask=mask)
        if HAS_BIAS:
            tl.store(pb_ptr + plane * chunks + chunk, tl.sum(gz, axis=0))
        if NOISE_GRAD == 1:
            gn_acc += gz
        if NOISE_GRAD == 2:
            tl.store(gn_ptr + plane * HW + offs, gz.to(gn_ptr.dtype.element_ty), mask=mask)
    if NOISE_GRAD == 1:
        tl.store(gn_ptr + pid.to(tl.int64) * HW + offs, gn_acc, mask=mask)


_TL_ACC = {torch.float64: tl.float64, torch.float32: tl.float32}


def _noise_strides(noise, shape):
    return (0, 0, 0, 0) if noise is None else noise.expand(shape).stride()


def _noise_flat(strides, W) -> bool:
    return strides[2] == W * strides[3]


def _noise_int64(noise, shape) -> bool:
    """64-bit noise offsets when the noise spans 2**31 elements or more (strides included)."""
    if noise is None:
        return False
    view = noise.expand(shape)
    return needs_int64(sum((d - 1) * abs(st) for d, st in zip(view.shape, view.stride())) + 1)


def launch_fwd(c, scale, noise, bias, params, out, *, act, clamp):
    """c, out [N, O, H, W] contiguous; scale [N, O] contiguous or None; noise broadcastable to
    c (any strides) or None; bias [O] or None; params a KernelParams (kernels/bias_act.py)."""
    N, O, H, W = c.shape
    (block,) = tile_shape(H * W)
    p_ptr, *scalars = param_args(params, c)
    with on_device(out):
        epilogue_fwd_kernel[(N * O, triton.cdiv(H * W, block))](
            c,
            c if scale is None else scale,
            c if noise is None else noise,
            c if bias is None else bias,
            p_ptr,
            out,
            O,
            H * W,
            W,
            *_noise_strides(noise, c.shape),
            *scalars,
            P_PTR=params.tensor is not None,
            HAS_SCALE=scale is not None,
            HAS_NOISE=noise is not None,
            NOISE_FLAT=_noise_flat(_noise_strides(noise, c.shape), W),
            HAS_BIAS=bias is not None,
            ACT=kernel_code(act),
            CLAMP=clamp,
            ACC=_TL_ACC[params.acc],
            INT64=_noise_int64(noise, c.shape),
            BLOCK=block,
        )
    return out


def channel_groups(N: int, O: int, chunks: int, groups: int | None = None) -> int:
    """How many groups the O channels are split into for the backward. On a GPU, enough
    programs to fill it (~1024), so low-resolution layers with many channels stay parallel;
    under the interpreter one group (fewest programs). `groups` overrides (tests)."""
    from kernels._dispatch import interpreting

    if groups is None:
        groups = 1 if interpreting() else -(-1024 // (N * chunks))
    return max(1, min(O, groups))


def launch_bwd(g, c, scale, noise, bias, params, *, act, clamp, want_noise_grad, groups=None):
    """-> (gc, gnoise summed to noise's shape or None, gscale [N, O] or None, gbias per plane
    [N, O] or None); the sums are in the accumulation dtype."""
    N, O, H, W = c.shape
    (block,) = tile_shape(H * W)
    chunks = triton.cdiv(H * W, block)
    per_group = -(-O // channel_groups(N, O, chunks, groups))
    groups = -(-O // per_group)  # no empty group
    nstr = _noise_strides(noise, c.shape)
    noise_grad = 0 if not want_noise_grad else (1 if nstr[1] == 0 else 2)
    gc = torch.empty_like(c)
    gn_shape = {0: [1], 1: [N * groups, H * W], 2: list(c.shape)}[noise_grad]
    gn = torch.empty(gn_shape, dtype=params.acc if noise_grad == 1 else c.dtype, device=c.device)
    ps = torch.empty([N * O, chunks], dtype=params.acc, device=c.device) if scale is not None else None
    pb = torch.empty([N * O, chunks], dtype=params.acc, device=c.device) if bias is not None else None
    p_ptr, *scalars = param_args(params, c)
    with on_device(gc):
        epilogue_bwd_kernel[(N * groups, chunks)](
            g,
            c,
            c if scale is None else scale,
            c if noise is None else noise,
            c if bias is None else bias,
            p_ptr,
            gc,
            gn,
            gc if ps is None else ps,
            gc if pb is None else pb,
            O,
            H * W,
            W,
            chunks,
            groups,
            per_group,
            *nstr,
            *scalars,
            P_PTR=params.tensor is not None,
            HAS_SCALE=scale is not None,
            HAS_NOISE=noise is not None,
            NOISE_FLAT=_noise_flat(nstr, W),
            HAS_BIAS=bias is not None,
            NOISE_GRAD=noise_grad,
            ACT=kernel_code(act),
            CLAMP=clamp,
            ACC=_TL_ACC[params.acc],
            INT64=_noise_int64(noise, c.shape),
            BLOCK=block,
        )
    gscale = None if ps is None else ps.sum(1).reshape(N, O)
    gbias = None if pb is None else pb.sum(1).reshape(N, O)
    gnoise = None
    if noise_grad == 1:
        gnoise = gn.reshape(N, groups, H, W).sum(1, keepdim=True).sum_to_size(noise.shape)
    elif noise_grad == 2:
        gnoise = gn.sum_to_size(noise.shape)
    return gc, gnoise, gscale, gbias
