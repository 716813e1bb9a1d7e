"""bias_act: add bias, apply an activation, multiply by a gain and clamp, in one op.

Semantics follow NVlabs stylegan2-ada-pytorch `torch_utils/ops/bias_act`. Reference in plain
PyTorch, so first and second derivatives (R1 through D) come from autograd. The Triton path
(kernels/triton_ops/bias_act.py) does the whole op in one pass and has hand-written first and
second derivatives.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch

from kernels._dispatch import acc_dtype, use_triton
from kernels.activations import ACTIVATIONS, check_act


def check_args(x, b, dim, act, alpha, gain, clamp) -> None:
    """Validate every argument (same errors for both implementations)."""
    check_act(act)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    for name, value in (("alpha", alpha), ("gain", gain), ("clamp", clamp)):
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise ValueError(f"{name}={value!r}: must be a number or None")
    if b is not None:
        if not isinstance(dim, int) or not 0 <= dim < x.ndim:
            raise ValueError(f"dim={dim!r}: must index a dimension of x (0..{x.ndim - 1})")
        if not isinstance(b, torch.Tensor) or not b.is_floating_point() or b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"b must be a 1-D float tensor with x.shape[dim]={x.shape[dim]} entries (dim={dim}), "
                             f"got {getattr(b, 'dtype', type(b))} {list(getattr(b, 'shape', []))}")
        if b.device != x.device:
            raise ValueError(f"b is on {b.device} but x is on {x.device}; move it with .to(x.device)")


def bias_act_ref(x: torch.Tensor, b: Optional[torch.Tensor] = None, dim: int = 1, act: str = "linear",
                 alpha: Optional[float] = None, gain: Optional[float] = None,
                 clamp: Optional[float] = None) -> torch.Tensor:
    check_args(x, b, dim, act, alpha, gain, clamp)
    spec = ACTIVATIONS[act]
    if b is not None:
        x = x + b.to(x.dtype).reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, spec.default_alpha if alpha is None else float(alpha))
    gain = spec.default_gain if gain is None else float(gain)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class KernelParams(NamedTuple):
    alpha: float
    gain: float
    clamp: float
    acc: torch.dtype  # accumulation dtype of the kernels
    tensor: Optional[torch.Tensor]  # [alpha, gain, clamp] in float64, for float64 math only


class KernelConfig(NamedTuple):
    """What the Triton kernels need, with defaults resolved: selu becomes elu with its alpha and
    its scale folded into the gain; elu ignores alpha (as the reference, which uses 1)."""
    act: str
    alpha: float
    gain: float
    clamp: Optional[float]
    dim: int

    @staticmethod
    def of(act, alpha, gain, clamp, dim) -> "KernelConfig":
        spec = ACTIVATIONS[act]
        alpha = spec.default_alpha if alpha is None else float(alpha)
        gain = spec.default_gain if gain is None else float(gain)
        if act == "selu":
            act, alpha, gain = "elu", _SELU_ALPHA, gain * _SELU_SCALE
        elif act == "elu":
            alpha = 1.0
        clamp = float(clamp) if clamp is not None and clamp >= 0 else None
        return KernelConfig(act, alpha, gain, clamp, dim)

    def params(self, acc: torch.dtype, device) -> "KernelParams":
        clamp = 0.0 if self.clamp is None else self.clamp
        # Scalars for float32 math; a float64 tensor only for float64 (see triton_ops/bias_act.py).
        tensor = (torch.tensor([self.alpha, self.gain, clamp], dtype=acc, device=device)
                  if acc == torch.float64 else None)
        return KernelParams(self.alpha, self.gain, clamp, acc, tensor)

    def layout(self, x: torch.Tensor, b) -> dict:
        if b is None:  # one long row
            return dict(C=1, inner=max(x.numel(), 1), act=self.act, clamp=self.clamp is not None)
        return dict(C=x.shape[self.dim], inner=math.prod(x.shape[self.dim + 1:]), act=self.act,
                    clamp=self.clamp is not None)


def bias_act_triton(x, b, cfg: KernelConfig, out: Optional[torch.Tensor] = None, tile=None) -> torch.Tensor:
    """One forward launch, no autograd; `out` (contiguous, x's shape) gets every element.
    `tile` (rows, inner elements; powers of 2) overrides the kernel's choice (tests)."""
    from kernels.triton_ops import bias_act as tk

    x = x.detach().contiguous()
    out = torch.empty_like(x) if out is None else out
    if out.numel():
        b = None if b is None else b.detach().to(x.dtype).contiguous()
        tk.launch_fwd(x, b, cfg.params(acc_dtype(x.dtype), x.device), out, **cfg.layout(x, b), tile=tile)
    return out


def _grad_launch(order, g, gg, x, b, cfg: KernelConfig) -> torch.Tensor:
    from kernels.triton_ops import bias_act as tk

    x = x.contiguous()
    out = torch.empty_like(x)
    if out.numel():
        b = None if b is None else b.detach().to(x.dtype).contiguous()
        tk.launch_grad(order, g.contiguous(), None if gg is None else gg.contiguous(), x.detach(), b,
                       cfg.params(acc_dtype(x.dtype), x.device), out, **cfg.layout(x, b))
    return out


def _sum_to_bias(g: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    return g.sum(dim=[i for i in range(g.ndim) if i != dim]).to(b.dtype)


class BiasActFunction(torch.autograd.Function):
    """Forward in one pass; the backward is BiasActGradFunction, itself differentiable once more,
    so R1 and path-length regularization (second derivatives) run on the kernels too. The
    original x and b are saved (not contiguous copies) so the backward stays on their graph."""

    @staticmethod
    def forward(ctx, x, b, cfg):
        ctx.save_for_backward(x, b)
        ctx.cfg = cfg
        return bias_act_triton(x, b, cfg)

    @staticmethod
    def backward(ctx, gy):
        x, b = ctx.saved_tensors
        gz = BiasActGradFunction.apply(gy, x, b, ctx.cfg)
        gb = _sum_to_bias(gz, b, ctx.cfg.dim) if ctx.needs_input_grad[1] else None
        return (gz if ctx.needs_input_grad[0] else None), gb, None


class BiasActGradFunction(torch.autograd.Function):
    """gz = gy * act'(x + b) * gain * [clamp passes]. Its derivative w.r.t. gy is this same
    Function again; w.r.t. x and b it is BiasActGrad2Function (act'')."""

    @staticmethod
    def forward(ctx, gy, x, b, cfg):
        ctx.save_for_backward(gy, x, b)
        ctx.cfg = cfg
        return _grad_launch(1, gy, None, x, b, cfg)

    @staticmethod
    def backward(ctx, ggz):
        gy, x, b = ctx.saved_tensors
        d_gy = BiasActGradFunction.apply(ggz, x, b, ctx.cfg) if ctx.needs_input_grad[0] else None
        d_x = d_b = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            d_x = BiasActGrad2Function.apply(gy, ggz, x, b, ctx.cfg)
            d_b = _sum_to_bias(d_x, b, ctx.cfg.dim) if ctx.needs_input_grad[2] else None
        return d_gy, (d_x if ctx.needs_input_grad[1] else None), d_b, None


class BiasActGrad2Function(torch.autograd.Function):
    """gy * ggz * act''(x + b) * gain * [clamp passes]: the second-derivative term. Going one
    order further would need the third derivative of act; it raises instead of silently
    dropping terms."""

    @staticmethod
    def forward(ctx, gy, ggz, x, b, cfg):
        return _grad_launch(2, gy, ggz, x, b, cfg)

    @staticmethod
    def backward(ctx, _):
        raise RuntimeError("bias_act(impl='triton') supports first and second derivatives; a third "
                           "derivative through the activation needs impl='ref'")


def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None, impl="auto"):
    """Bias along `dim`, activation, gain (default per activation), then clamp to [-clamp, clamp].

    `impl`: "auto" (Triton on CUDA, reference elsewhere), "ref" or "triton"."""
    check_args(x, b, dim, act, alpha, gain, clamp)
    if use_triton(impl, x):
        return BiasActFunction.apply(x, b, KernelConfig.of(act, alpha, gain, clamp, dim))
    return bias_act_ref(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
