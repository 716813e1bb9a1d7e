"""bias_act kernels: y = clamp(act(x + b) * gain), and its first and second derivatives.

The activation code (ACT) is a compile-time constant, so each activation compiles to straight
code. There is no libdevice under the interpreter, so tanh and softplus are built from tl.exp
and tl.log. alpha, gain and clamp are scalar arguments, except for float64, where they come in a
small float64 tensor: Triton passes Python floats as float32, which would cost the float64 path
its precision. (A tensor on every call would mean a host-to-device copy, which PyTorch follows
with a stream synchronization: acceptable for float64 tests, not for training.)
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.activations import ACTIVATIONS, kernel_code
from kernels.triton_ops.device import on_device
from kernels.triton_ops.tiles import needs_int64, tile_shape

# The ACT codes come from the shared table (kernels/activations.py), as constexpr globals (the
# only globals a jitted function may read), so a branch cannot test a stale number. selu has no
# code: it runs as elu with alpha 1.6733 and its scale 1.0507 folded into the gain (the caller
# does that), which keeps float32 literals out of the float64 path. An ACT matching no branch
# fails to compile (static_assert) instead of falling into the last branch.
_LINEAR = tl.constexpr(ACTIVATIONS["linear"].code)
_RELU = tl.constexpr(ACTIVATIONS["relu"].code)
_LRELU = tl.constexpr(ACTIVATIONS["lrelu"].code)
_TANH = tl.constexpr(ACTIVATIONS["tanh"].code)
_SIGMOID = tl.constexpr(ACTIVATIONS["sigmoid"].code)
_ELU = tl.constexpr(ACTIVATIONS["elu"].code)
_SOFTPLUS = tl.constexpr(ACTIVATIONS["softplus"].code)
_SWISH = tl.constexpr(ACTIVATIONS["swish"].code)


@triton.jit
def _sigmoid(z):
    return 1.0 / (1.0 + tl.exp(-z))


@triton.jit
def act_fwd(z, alpha, ACT: tl.constexpr):
    if ACT == _LINEAR:
        y = z
    elif ACT == _RELU:
        y = tl.where(z > 0, z, 0.0)
    elif ACT == _LRELU:
        y = tl.where(z > 0, z, z * alpha)
    elif ACT == _TANH:
        y = 1.0 - 2.0 / (tl.exp(2.0 * z) + 1.0)  # tanh; saturates to +-1 without inf/inf
    elif ACT == _SIGMOID:
        y = _sigmoid(z)
    elif ACT == _ELU:
        y = tl.where(z > 0, z, alpha * (tl.exp(z) - 1.0))
    elif ACT == _SOFTPLUS:
        y = tl.where(z > 20.0, z, tl.log(1.0 + tl.exp(z)))  # torch's softplus threshold (20)
    elif ACT == _SWISH:
        y = z * _sigmoid(z)
    else:
        tl.static_assert(False, "unknown activation code ACT (see kernels/activations.py)")
    return y


@triton.jit
def act_d1(z, alpha, ACT: tl.constexpr):
    """d act / dz, with the same choice at kinks as torch's autograd (0 at z == 0 for relu)."""
    if ACT == _LINEAR:
        d = z * 0.0 + 1.0
    elif ACT == _RELU:
        d = tl.where(z > 0, 1.0, 0.0)
    elif ACT == _LRELU:
        d = tl.where(z > 0, 1.0, alpha + z * 0.0)
    elif ACT == _TANH:
        t = 1.0 - 2.0 / (tl.exp(2.0 * z) + 1.0)
        d = 1.0 - t * t
    elif ACT == _SIGMOID:
        s = _sigmoid(z)
        d = s * (1.0 - s)
    elif ACT == _ELU:
        d = tl.where(z > 0, 1.0, alpha * tl.exp(z))
    elif ACT == _SOFTPLUS:
        d = tl.where(z > 20.0, 1.0, _sigmoid(z))
    elif ACT == _SWISH:
        s = _sigmoid(z)
        d = s * (1.0 + z * (1.0 - s))
    else:
        tl.static_assert(False, "unknown activation code ACT (see kernels/activations.py)")
    return d


@triton.jit
def act_d2(z, alpha, ACT: tl.constexpr):
    """d^2 act / dz^2 (zero for the piecewise-linear activations)."""
    if (ACT == _LINEAR) or (ACT == _RELU) or (ACT == _LRELU):
        d = z * 0.0
    elif ACT == _TANH:
        t = 1.0 - 2.0 / (tl.exp(2.0 * z) + 1.0)
        d = -2.0 * t * (1.0 - t * t)
    elif ACT == _SIGMOID:
        s = _sigmoid(z)
        d = s * (1.0 - s) * (1.0 - 2.0 * s)
    elif ACT == _ELU:
        d = tl.where(z > 0, 0.0, alpha * tl.exp(z))
    elif ACT == _SOFTPLUS:
        s = _sigmoid(z)
        d = tl.where(z > 20.0, 0.0, s * (1.0 - s))
    elif ACT == _SWISH:
        s = _sigmoid(z)
        d = s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s))
    else:
        tl.static_assert(False, "unknown activation code ACT (see kernels/activations.py)")
    return d


@triton.jit
def clamp_mask(y, clamp, CLAMP: tl.constexpr):
    """1 where clamp passes the gradient (inclusive bounds, as torch.clamp), else 0."""
    if CLAMP:
        m = tl.where((y >= -clamp) & (y <= clamp), 1.0, 0.0)
    else:
        m = y * 0.0 + 1.0
    return m


@triton.jit
def load_params(p_ptr, alpha, gain, clamp, P_PTR: tl.constexpr):
    """alpha, gain, clamp: scalar arguments (float32) for float32/bf16 math; for float64 they
    are read from a float64 tensor instead, as Triton passes Python floats as float32."""
    if P_PTR:
        alpha, gain, clamp = tl.load(p_ptr), tl.load(p_ptr + 1), tl.load(p_ptr + 2)
    return alpha, gain, clamp


@triton.jit
def tile_index(pid, R, inner, chunks, INT64: tl.constexpr, BR: tl.constexpr, BI: tl.constexpr):
    # x is viewed as [R = outer * C, inner]: a [BR, BI] tile of it. The bias index is the row
    # mod C, taken on the [BR, 1] row vector, so lanes do no division by runtime sizes.
    # With INT64, pid is widened before any product: without a bias the whole tensor is one
    # row, so (pid % chunks) * BI alone passes 2**31 (and so does (pid // chunks) * BR when
    # inner is 1). The program id is an argument so tests can probe ids no test grid reaches.
    if INT64:
        pid = pid.to(tl.int64)
    r = (pid // chunks) * BR + tl.arange(0, BR)[:, None]
    i = (pid % chunks) * BI + tl.arange(0, BI)[None, :]
    return r, r * inner + i, (r < R) & (i < inner)


@triton.jit
def bias_act_fwd_kernel(
    x_ptr,
    b_ptr,
    p_ptr,
    out_ptr,
    R,
    C,
    inner,
    chunks,
    alpha,
    gain,
    clamp,
    P_PTR: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    ACT: tl.constexpr,
    CLAMP: tl.constexpr,
    ACC: tl.constexpr,
    INT64: tl.constexpr,
    BR: tl.constexpr,
    BI: tl.constexpr,
):
    r, offs, mask = tile_index(tl.program_id(0), R, inner, chunks, INT64, BR, BI)
    alpha, gain, clamp = load_params(p_ptr, alpha, gain, clamp, P_PTR)
    z = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
    if HAS_BIAS:
        z += tl.load(b_ptr + r % C, mask=r < R, other=0.0).to(ACC)
    y = act_fwd(z, alpha, ACT) * gain
    if CLAMP:
        y = tl.minimum(tl.maximum(y, -clamp), clamp)
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def bias_act_grad_kernel(
    g_ptr,
    gg_ptr,
    x_ptr,
    b_ptr,
    p_ptr,
    out_ptr,
    R,
    C,
    inner,
    chunks,
    alpha,
    gain,
    clamp,
    P_PTR: tl.constexpr,
    ORDER: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    ACT: tl.constexpr,
    CLAMP: tl.constexpr,
    ACC: tl.constexpr,
    INT64: tl.constexpr,
    BR: tl.constexpr,
    BI: tl.constexpr,
):
    # ORDER 1: out = g * act'(z) * gain * [clamp passes]           (dL/dz from dL/dy = g)
    # ORDER 2: out = gg * g * act''(z) * gain * [clamp passes]     (d(dL/dz)/dz, times gg)
    r, offs, mask = tile_index(tl.program_id(0), R, inner, chunks, INT64, BR, BI)
    alpha, gain, clamp = load_params(p_ptr, alpha, gain, clamp, P_PTR)
    z = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
    if HAS_BIAS:
        z += tl.load(b_ptr + r % C, mask=r < R, other=0.0).to(ACC)
    m = clamp_mask(act_fwd(z, alpha, ACT) * gain, clamp, CLAMP) * gain
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(ACC)
    if ORDER == 1:
        out = g * act_d1(z, alpha, ACT) * m
    else:
        gg = tl.load(gg_ptr + offs, mask=mask, other=0.0).to(ACC)
        out = gg * g * act_d2(z, alpha, ACT) * m
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


_TL_ACC = {torch.float64: tl.float64, torch.float32: tl.float32}


def _grid_args(x, R, inner, tile):
    br, bi = tile or tile_shape(R, inner)
    chunks = triton.cdiv(inner, bi)
    return (triton.cdiv(R, br) * chunks,), chunks, dict(INT64=needs_int64(x.numel()), BR=br, BI=bi)


def param_args(params, dummy) -> tuple:
    """KernelParams -> (p_ptr, alpha, gain, clamp) kernel arguments."""
    return (dummy if params.tensor is None else params.tensor, params.alpha, params.gain, params.clamp)


def launch_fwd(x, b, params, out, *, C, inner, act, clamp, tile=None):
    """x, out contiguous, viewed as [R, inner] with R = outer * C; b None or [C] in x's dtype;
    params a KernelParams (kernels/bias_act.py). `tile` overrides tiles.tile_shape (tests)."""
    R = out.numel() // inner
    grid, chunks, blocks = _grid_args(out, R, inner, tile)
    p_ptr, alpha, gain, clamp_value = param_args(params, x)
    with on_device(out):
        bias_act_fwd_kernel[grid](
            x,
            x if b is None else b,
            p_ptr,
            out,
            R,
            C,
            inner,
            chunks,
            alpha,
            gain,
            clamp_value,
            P_PTR=params.tensor is not None,
            HAS_BIAS=b is not None,
            ACT=kernel_code(act),
            CLAMP=clamp,
            ACC=_TL_ACC[params.acc],
            **blocks,
        )
    return out


def launch_grad(order, g, gg, x, b, params, out, *, C, inner, act, clamp, tile=None):
    R = out.numel() // inner
    grid, chunks, blocks = _grid_args(out, R, inner, tile)
    p_ptr, alpha, gain, clamp_value = param_args(params, x)
    with on_device(out):
        bias_act_grad_kernel[grid](
            g,
            g if gg is None else gg,
            x,
            x if b is None else b,
            p_ptr,
            out,
            R,
            C,
            inner,
            chunks,
            alpha,
            gain,
            clamp_value,
            P_PTR=params.tensor is not None,
            ORDER=order,
            HAS_BIAS=b is not None,
            ACT=kernel_code(act),
            CLAMP=clamp,
            ACC=_TL_ACC[params.acc],
            **blocks,
        )
    return out
