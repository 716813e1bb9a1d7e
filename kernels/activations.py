"""The one activation table: the reference (kernels/bias_act.py), the Triton kernels
(kernels/triton_ops/) and the custom ops (kernels/custom_ops.py) all read it, so a name, its
defaults and its kernel code cannot drift apart between them.

Torch only (no Triton): `import kernels` must work where Triton is not installed.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F


class Activation(NamedTuple):
    func: Callable[[torch.Tensor, float], torch.Tensor]  # the reference, autograd-differentiable
    default_alpha: float
    default_gain: float
    # Compile-time ACT constant of the Triton kernels; None where the op rewrites the
    # activation into another one before launch (selu runs as elu, see KernelConfig.of).
    code: Optional[int]
    # act'' == 0 wherever it is defined: the second-derivative term of R1 is all zeros, so the
    # double backward skips it instead of launching a kernel that writes zeros.
    piecewise_linear: bool


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0, 0, True),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2), 1, True),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2), 2, True),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0, 3, False),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0, 4, False),
    "elu": Activation(lambda x, a: F.elu(x), 0.0, 1.0, 5, False),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0, None, False),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0, 7, False),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2), 8, False),
}

# Names by kernel code, for the error raised on an unknown code.
KERNEL_ACTS: dict[int, str] = {a.code: name for name, a in ACTIVATIONS.items() if a.code is not None}


def check_act(act) -> Activation:
    if act not in ACTIVATIONS:
        raise ValueError(f"act={act!r}: valid choices are {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[act]


def kernel_code(act: str) -> int:
    """Kernel ACT constant of an activation the kernels run directly; a clear error otherwise
    (an unknown code would otherwise be compiled into whatever the last branch computes)."""
    spec = check_act(act)
    if spec.code is None:
        raise ValueError(
            f"act={act!r} has no kernel of its own: it is rewritten before launch "
            f"(use KernelConfig.of, which turns selu into elu)"
        )
    return spec.code


# Reference derivatives of the kernel activations (alpha resolved, selu already rewritten):
# what the custom op's reference implementation runs, mirroring act_d1/act_d2 of the kernels,
# with the same choice at kinks as torch's autograd (relu' = 0 at 0, lrelu' = alpha at 0).
def act_d1(act: str, z: torch.Tensor, alpha: float) -> torch.Tensor:
    if act == "linear":
        return torch.ones_like(z)
    if act == "relu":
        return (z > 0).to(z.dtype)
    if act == "lrelu":
        # Tensors, not Python scalars: torch.where of two scalars is float32, which would round
        # alpha before a float64 computation.
        return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, alpha))
    if act == "tanh":
        return 1 - torch.tanh(z).square()
    if act in ("sigmoid", "softplus"):  # softplus' = sigmoid (torch's threshold 20: slope 1 past it)
        s = torch.sigmoid(z)
        return s * (1 - s) if act == "sigmoid" else torch.where(z > 20, 1.0, s)
    if act == "elu":
        return torch.where(z > 0, 1.0, alpha * torch.exp(z))
    if act == "swish":
        s = torch.sigmoid(z)
        return s * (1 + z * (1 - s))
    raise ValueError(f"act={act!r}: no reference derivative (kernel activations: {', '.join(KERNEL_ACTS.values())})")


def act_d2(act: str, z: torch.Tensor, alpha: float) -> torch.Tensor:
    if ACTIVATIONS[act].piecewise_linear:
        return torch.zeros_like(z)
    s = torch.sigmoid(z)
    if act == "tanh":
        t = torch.tanh(z)
        return -2 * t * (1 - t.square())
    if act == "sigmoid":
        return s * (1 - s) * (1 - 2 * s)
    if act == "elu":
        return torch.where(z > 0, 0.0, alpha * torch.exp(z))
    if act == "softplus":
        return torch.where(z > 20, 0.0, s * (1 - s))
    if act == "swish":
        return s * (1 - s) * (2 + z * (1 - 2 * s))
    raise ValueError(f"act={act!r}: no reference derivative (kernel activations: {', '.join(KERNEL_ACTS.values())})")


def act_fwd(act: str, z: torch.Tensor, alpha: float) -> torch.Tensor:
    """The kernel activation in PyTorch (alpha resolved: elu takes it, unlike the public elu)."""
    if act == "elu":
        return torch.where(z > 0, z, alpha * torch.expm1(z))
    return check_act(act).func(z, alpha)
