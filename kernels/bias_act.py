"""bias_act: add bias, apply an activation, multiply by a gain and clamp, in one op.

Semantics follow NVlabs stylegan2-ada-pytorch `torch_utils/ops/bias_act`. Reference in plain
PyTorch, so first and second derivatives (R1 through D) come from autograd.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F


class Activation(NamedTuple):
    func: Callable[[torch.Tensor, float], torch.Tensor]
    default_alpha: float
    default_gain: float


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": Activation(lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def bias_act_ref(x: torch.Tensor, b: Optional[torch.Tensor] = None, dim: int = 1, act: str = "linear",
                 alpha: Optional[float] = None, gain: Optional[float] = None,
                 clamp: Optional[float] = None) -> torch.Tensor:
    if act not in ACTIVATIONS:
        raise ValueError(f"act={act!r}: valid choices are {', '.join(ACTIVATIONS)}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    spec = ACTIVATIONS[act]
    if b is not None:
        if b.ndim != 1 or not 0 <= dim < x.ndim or b.shape[0] != x.shape[dim]:
            raise ValueError(f"b must be 1-D with x.shape[dim]={x.shape[dim] if 0 <= dim < x.ndim else '?'} "
                             f"entries (dim={dim}), got shape {list(b.shape)}")
        x = x + b.to(x.dtype).reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, spec.default_alpha if alpha is None else float(alpha))
    gain = spec.default_gain if gain is None else float(gain)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None, impl="auto"):
    if impl not in ("auto", "ref", "triton"):
        raise ValueError(f"impl={impl!r}: valid choices are auto, ref, triton")
    return bias_act_ref(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
