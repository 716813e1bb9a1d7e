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

from kernels import guard
from kernels._dispatch import acc_dtype, use_triton
from kernels.activations import ACTIVATIONS, act_d1, act_d2, act_fwd, check_act


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
            raise ValueError(
                f"b must be a 1-D float tensor with x.shape[dim]={x.shape[dim]} entries (dim={dim}), "
                f"got {getattr(b, 'dtype', type(b))} {list(getattr(b, 'shape', []))}"
            )
        if b.device != x.device:
            raise ValueError(f"b is on {b.device} but x is on {x.device}; move it with .to(x.device)")


def bias_act_ref(
    x: torch.Tensor,
    b: Optional[torch.Tensor] = None,
    dim: int = 1,
    act: str = "linear",
    alpha: Optional[float] = None,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
) -> torch.Tensor:
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
        tensor = (
            torch.tensor([self.alpha, self.gain, clamp], dtype=acc, device=device) if acc == torch.float64 else None
        )
        return KernelParams(self.alpha, self.gain, clamp, acc, tensor)

    def layout(self, x: torch.Tensor, b) -> dict:
        if b is None:  # one long row
            return dict(C=1, inner=max(x.numel(), 1), act=self.act, clamp=self.clamp is not None)
        return dict(
            C=x.shape[self.dim], inner=math.prod(x.shape[self.dim + 1 :]), act=self.act, clamp=self.clamp is not None
        )


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
        tk.launch_grad(
            order,
            g.contiguous(),
            None if gg is None else gg.contiguous(),
            x.detach(),
            b,
            cfg.params(acc_dtype(x.dtype), x.device),
            out,
            **cfg.layout(x, b),
        )
    return out


def _sum_to_bias(g: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    return g.sum(dim=[i for i in range(g.ndim) if i != dim]).to(b.dtype)


def grad_wanted(ctx, i: int, t: Optional[torch.Tensor]) -> bool:
    """Whether this backward pass uses input i's gradient. needs_input_grad only says that t
    requires grad: R1's autograd.grad(D(x), x) would otherwise reduce every bias gradient of D
    just to drop it. Outside the autograd engine (a compiler tracing the backward) the engine
    cannot be asked, and the gradient is computed."""
    if t is None or not ctx.needs_input_grad[i]:
        return False
    try:
        return torch._C._will_engine_execute_node(torch.autograd.graph.get_gradient_edge(t).node)
    except (RuntimeError, AttributeError, ValueError):
        return True


# ---- custom ops (torch.library) ---------------------------------------------------------------
# The op, its gradient and its second-derivative term are custom ops with arguments already
# resolved by KernelConfig.of (selu rewritten, defaults filled), so torch.compile sees three
# opaque nodes with fake (shape-only) implementations instead of a Triton launch it would break
# the graph on. Each op runs "triton" (the kernels) or "ref" (the same math in PyTorch, what a
# CPU compile dispatches, so the graph is the same on every device). Their autograd formulas
# call the next op, so the double backward of R1 is recorded too; a third derivative raises.


def _reshape_bias(b, x, dim):
    return b.to(x.dtype).reshape([-1 if i == dim else 1 for i in range(x.ndim)])


def _pre_act_ref(x, b, cfg: KernelConfig):
    return x if b is None else x + _reshape_bias(b, x, cfg.dim)


def _clamp_mask_ref(z, cfg: KernelConfig):
    """gain where the clamp passes the gradient (inclusive bounds, as torch.clamp), else 0."""
    if cfg.clamp is None:
        return cfg.gain
    y = act_fwd(cfg.act, z, cfg.alpha) * cfg.gain
    return ((y >= -cfg.clamp) & (y <= cfg.clamp)).to(z.dtype) * cfg.gain


def forward_ref(x, b, cfg: KernelConfig) -> torch.Tensor:
    """The kernel's math in PyTorch, differentiable (also the epilogue's create_graph fallback)."""
    y = act_fwd(cfg.act, _pre_act_ref(x, b, cfg), cfg.alpha) * cfg.gain
    return y if cfg.clamp is None else y.clamp(-cfg.clamp, cfg.clamp)


def grad_ref(gy, z, cfg: KernelConfig) -> torch.Tensor:
    """gy * act'(z) * gain * [clamp passes], z the pre-activation (x + b)."""
    return gy.to(z.dtype) * act_d1(cfg.act, z, cfg.alpha) * _clamp_mask_ref(z, cfg)


def _cfg(dim, act, alpha, gain, clamp) -> KernelConfig:
    return KernelConfig(act, alpha, gain, clamp, dim)


@torch.library.custom_op("hiresgan::bias_act", mutates_args=())
def bias_act_op(
    x: torch.Tensor,
    b: Optional[torch.Tensor],
    dim: int,
    act: str,
    alpha: float,
    gain: float,
    clamp: Optional[float],
    impl: str,
) -> torch.Tensor:
    cfg = _cfg(dim, act, alpha, gain, clamp)
    if impl == "triton":
        return bias_act_triton(x, b, cfg)
    return forward_ref(x, b, cfg).contiguous()  # contiguous: what the fake promises


@torch.library.custom_op("hiresgan::bias_act_grad", mutates_args=())
def bias_act_grad_op(
    gy: torch.Tensor,
    x: torch.Tensor,
    b: Optional[torch.Tensor],
    dim: int,
    act: str,
    alpha: float,
    gain: float,
    clamp: Optional[float],
    impl: str,
) -> torch.Tensor:
    """gz = gy * act'(x + b) * gain * [clamp passes]."""
    cfg = _cfg(dim, act, alpha, gain, clamp)
    if impl == "triton":
        return _grad_launch(1, gy, None, x, b, cfg)
    return grad_ref(gy, _pre_act_ref(x, b, cfg), cfg).to(x.dtype).contiguous()


@torch.library.custom_op("hiresgan::bias_act_grad2", mutates_args=())
def bias_act_grad2_op(
    gy: torch.Tensor,
    ggz: torch.Tensor,
    x: torch.Tensor,
    b: Optional[torch.Tensor],
    dim: int,
    act: str,
    alpha: float,
    gain: float,
    clamp: Optional[float],
    impl: str,
) -> torch.Tensor:
    """gy * ggz * act''(x + b) * gain * [clamp passes]: the second-derivative term."""
    cfg = _cfg(dim, act, alpha, gain, clamp)
    if impl == "triton":
        return _grad_launch(2, gy, ggz, x, b, cfg)
    z = _pre_act_ref(x, b, cfg)
    return (gy * ggz * act_d2(cfg.act, z, cfg.alpha) * _clamp_mask_ref(z, cfg)).to(x.dtype).contiguous()


@bias_act_op.register_fake
def _(x, b, dim, act, alpha, gain, clamp, impl):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


@bias_act_grad_op.register_fake
def _(gy, x, b, dim, act, alpha, gain, clamp, impl):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


@bias_act_grad2_op.register_fake
def _(gy, ggz, x, b, dim, act, alpha, gain, clamp, impl):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


def _setup(ctx, inputs, output):
    # The original tensors (not contiguous copies) are saved, so the backward stays on their graph.
    *tensors, dim, act, alpha, gain, clamp, impl = inputs
    ctx.save_for_backward(*tensors)
    ctx.args = (dim, act, alpha, gain, clamp, impl)


def _bias_act_backward(ctx, gy):
    x, b = ctx.saved_tensors
    dim = ctx.args[0]
    gz = bias_act_grad_op(gy, x, b, *ctx.args)
    gb = _sum_to_bias(gz, b, dim) if grad_wanted(ctx, 1, b) else None
    return gz, gb, None, None, None, None, None, None


def _grad_backward(ctx, ggz):
    gy, x, b = ctx.saved_tensors
    dim, act = ctx.args[:2]
    d_gy = bias_act_grad_op(ggz, x, b, *ctx.args) if ctx.needs_input_grad[0] else None
    d_x = d_b = None
    want_b = grad_wanted(ctx, 2, b)
    if ACTIVATIONS[act].piecewise_linear:
        # act'' is zero for linear, relu and lrelu: skip the kernel that would compute zeros from
        # gy, ggz, x and b and the reduction of them (every R1 step through D's lrelu layers).
        # Zeros, not None: autograd.grad(..., x) must find x used, as with the reference.
        d_x = torch.zeros_like(x) if ctx.needs_input_grad[1] else None
        d_b = torch.zeros_like(b) if want_b else None
    elif ctx.needs_input_grad[1] or want_b:
        d_x = bias_act_grad2_op(gy, ggz, x, b, *ctx.args)
        d_b = _sum_to_bias(d_x, b, dim) if want_b else None
    return d_gy, (d_x if ctx.needs_input_grad[1] else None), d_b, None, None, None, None, None, None


def _grad2_backward(ctx, _):
    raise RuntimeError(
        "bias_act(impl='triton') supports first and second derivatives; a third "
        "derivative through the activation needs impl='ref'"
    )


bias_act_op.register_autograd(_bias_act_backward, setup_context=_setup)
bias_act_grad_op.register_autograd(_grad_backward, setup_context=_setup)
bias_act_grad2_op.register_autograd(_grad2_backward, setup_context=lambda ctx, inputs, output: None)


def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None, impl="auto"):
    """Bias along `dim`, activation, gain (default per activation), then clamp to [-clamp, clamp].

    `impl`: "auto" (Triton on CUDA, reference elsewhere), "ref" or "triton". Under
    torch.compile the op is one custom-op node whatever the device (see above); in eager mode
    the reference is plain PyTorch, so autograd gives it derivatives of every order."""
    check_args(x, b, dim, act, alpha, gain, clamp)
    triton = use_triton(impl, x, op="bias_act")
    if triton or torch.compiler.is_compiling():
        cfg = KernelConfig.of(act, alpha, gain, clamp, dim)
        return bias_act_op(x, b, cfg.dim, cfg.act, cfg.alpha, cfg.gain, cfg.clamp, "triton" if triton else "ref")
    return bias_act_ref(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)


@guard.register_case("bias_act")
def _parity_case(impl, device):
    """The first-use check (kernels/guard.py): lrelu with bias and clamp, swish without a bias."""
    x, b = guard.seeded_inputs(device, (2, 5, 6, 7), (5,))
    leaves = [x.requires_grad_(), b.requires_grad_()]
    return bias_act(x, b, act="lrelu", clamp=1.0, impl=impl) + bias_act(x, act="swish", impl=impl), leaves
