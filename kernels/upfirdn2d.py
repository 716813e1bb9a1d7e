"""upfirdn2d: upsample (zero insertion), pad or crop, FIR filter, downsample, in one op.

Semantics and signature follow NVlabs stylegan2-ada-pytorch `torch_utils/ops/upfirdn2d`, so
layers can be compared one for one. Reference implementation in plain PyTorch: every gradient
order comes from autograd. The Triton path (kernels/triton_ops/upfirdn2d.py) is polyphase and
its autograd Function's backward is the same op with swapped parameters.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from kernels import guard
from kernels._dispatch import acc_dtype, use_triton

Scaling = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int]]


def parse_scaling(value: Scaling, name: str) -> tuple[int, int]:
    """int or (x, y) -> (x, y) positive integers."""
    try:
        sx, sy = (value, value) if isinstance(value, int) else tuple(value)
    except (TypeError, ValueError):
        sx = sy = None
    for s in (sx, sy):
        if not isinstance(s, int) or isinstance(s, bool) or s < 1:
            raise ValueError(f"{name}={value!r}: must be a positive integer or an (x, y) pair of them")
    return sx, sy


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """int, (px, py) or (x0, x1, y0, y1) -> (x0, x1, y0, y1); negative values crop."""
    if isinstance(padding, int) and not isinstance(padding, bool):
        return padding, padding, padding, padding
    try:
        values = [p.__index__() for p in padding]
    except (TypeError, AttributeError):
        values = []
    if len(values) == 2:
        return values[0], values[0], values[1], values[1]
    if len(values) == 4:
        return tuple(values)  # type: ignore[return-value]
    raise ValueError(f"padding={padding!r}: expected an int, (px, py) or (x0, x1, y0, y1) of ints")


def filter_size(f: Optional[torch.Tensor]) -> tuple[int, int]:
    """(width, height) of a 1-D (separable) or 2-D filter; (1, 1) for None."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"filter f must be 1-D or 2-D, got shape {list(f.shape)}")
    return f.shape[-1], f.shape[0]


def setup_filter(
    f, device=None, normalize: bool = True, flip_filter: bool = False, gain: float = 1, separable: Optional[bool] = None
) -> torch.Tensor:
    """Taps -> float32 filter tensor. Small 1-D filters become their 2-D outer product (faster
    for small kernels); `gain` is spread so the effective 2-D filter sums to `gain`."""
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"filter must be 1-D or 2-D and non-empty, got shape {list(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


class Geometry(NamedTuple):
    up: tuple[int, int]  # (x, y) everywhere
    down: tuple[int, int]
    pad0: tuple[int, int]
    pad1: tuple[int, int]
    fsize: tuple[int, int]
    out_size: tuple[int, int]  # (OW, OH)


def check_args(x, f, up, down, padding, gain) -> Geometry:
    """Validate every argument (same errors for both implementations) and size the output."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a 4-D tensor [N, C, H, W], got {getattr(x, 'shape', type(x))}")
    if not x.is_floating_point():
        raise ValueError(f"x must be floating point, got {x.dtype}")
    if f is not None:
        if not isinstance(f, torch.Tensor) or not f.is_floating_point() or f.ndim not in (1, 2) or f.numel() == 0:
            raise ValueError(
                f"f must be None or a non-empty 1-D or 2-D float tensor (see setup_filter), got "
                f"{getattr(f, 'dtype', type(f))} {list(getattr(f, 'shape', []))}"
            )
        if f.device != x.device:
            raise ValueError(f"f is on {f.device} but x is on {x.device}; move the filter with .to(x.device)")
    if not isinstance(gain, (int, float)) or isinstance(gain, bool):
        raise ValueError(f"gain={gain!r}: must be a number")
    upx, upy = parse_scaling(up, "up")
    downx, downy = parse_scaling(down, "down")
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    H, W = x.shape[2:]
    # Length after zero insertion and padding, minus the filter, gives the valid positions.
    span_w = W * upx + px0 + px1 - fw
    span_h = H * upy + py0 + py1 - fh
    if span_w < 0 or span_h < 0:
        raise ValueError(
            f"padding={padding!r}: the padded, upsampled input "
            f"[{H * upy + py0 + py1}, {W * upx + px0 + px1}] is smaller than the filter "
            f"[{fh}, {fw}]; use less cropping or a larger input"
        )
    return Geometry(
        (upx, upy), (downx, downy), (px0, py0), (px1, py1), (fw, fh), (span_w // downx + 1, span_h // downy + 1)
    )


def upfirdn2d_ref(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    up: Scaling = 1,
    down: Scaling = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    return _reference(x, f, check_args(x, f, up, down, padding, gain), flip_filter, gain)


def _reference(x: torch.Tensor, f: Optional[torch.Tensor], geom: Geometry, flip_filter: bool, gain: float):
    (upx, upy), (downx, downy) = geom.up, geom.down
    (px0, py0), (px1, py1) = geom.pad0, geom.pad1
    N, C, H, W = x.shape
    # Zero insertion: each pixel followed by up-1 zeros along each axis. Skipped at up=1, as is a
    # padding of zeros: F.pad copies even when it adds nothing (and so does its gradient).
    if upx > 1 or upy > 1:
        x = x.reshape(N, C, H, 1, W, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1]).reshape(N, C, H * upy, W * upx)
    if max(px0, px1, py0, py1) > 0:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    f = correlation_taps(f, flip_filter, gain, acc_dtype(x.dtype), x.device).to(x.dtype)
    # Downsampling is the convolution's stride: the outputs every down-th sample would discard
    # are never computed (the same products and sums as filtering everything, then slicing).
    if f.ndim == 2:
        return F.conv2d(x, f[None, None].repeat([C, 1, 1, 1]), stride=(downy, downx), groups=C)
    x = F.conv2d(x, f[None, None, None, :].repeat([C, 1, 1, 1]), stride=(1, downx), groups=C)
    return F.conv2d(x, f[None, None, :, None].repeat([C, 1, 1, 1]), stride=(downy, 1), groups=C)


def correlation_taps(
    f: Optional[torch.Tensor], flip_filter: bool, gain: float, dtype: torch.dtype, device
) -> torch.Tensor:
    """The taps as both implementations correlate them: flipped unless flip_filter (conv2d and
    the kernel correlate; the op convolves), gain spread over the axes. One function for both,
    and the cast to the accumulation dtype comes before the gain: a float32 filter (as from
    setup_filter) scaled in float32 carried a float32 rounding of the gain into float64 results
    (relative error ~1e-7 between the two paths, which had done it in different orders)."""
    f = torch.ones([1, 1], device=device) if f is None else f  # not detached: the reference differentiates f
    f = f.to(dtype) if gain == 1 else f.to(dtype) * (gain ** (f.ndim / 2))  # x * 1.0 == x: skip the op
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    return f.contiguous()


def upfirdn2d_triton(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    geom: Geometry,
    flip_filter: bool,
    gain: float,
    out: Optional[torch.Tensor] = None,
    tile=None,
) -> torch.Tensor:
    """One launch of the polyphase kernel, no autograd. `out` (contiguous, poisoned in tests)
    must have the output shape; every element is written."""
    from kernels.triton_ops import upfirdn2d as tk

    ow, oh = geom.out_size
    if out is None:
        out = torch.empty([x.shape[0], x.shape[1], oh, ow], dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    taps = correlation_taps(None if f is None else f.detach(), flip_filter, gain, acc_dtype(x.dtype), x.device)
    fy, fx = (taps, taps) if taps.ndim == 1 else (taps, None)
    return tk.launch(x, fy, fx, out, up=geom.up, down=geom.down, pad0=geom.pad0, fsize=geom.fsize, tile=tile)


# ---- custom op (torch.library) ----------------------------------------------------------------
# One opaque node for torch.compile (a fake implementation gives it the output shape), running
# "triton" (the polyphase kernel) or "ref" (the reference: what a CPU compile dispatches, so the
# graph is the same on every device). The gradient of upfirdn2d is upfirdn2d of the output
# gradient with up and down swapped, the filter flipped and the padding mirrored; the autograd
# formula calls the op again, so gradients of every order work (the filter gets none: it is a
# constant buffer; a filter that requires grad is served by the plain reference).


@torch.library.custom_op("hiresgan::upfirdn2d", mutates_args=())
def upfirdn2d_op(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    up: list[int],
    down: list[int],
    padding: list[int],
    flip_filter: bool,
    gain: float,
    impl: str,
) -> torch.Tensor:
    if impl == "triton":
        return upfirdn2d_triton(x, f, check_args(x, f, up, down, padding, gain), flip_filter, gain)
    # contiguous: what the fake promises (down > 1 leaves a strided view of the conv output)
    return upfirdn2d_ref(x, f, up, down, padding, flip_filter, gain).contiguous()


@upfirdn2d_op.register_fake
def _(x, f, up, down, padding, flip_filter, gain, impl):
    ow, oh = check_args(x, f, up, down, padding, gain).out_size
    return x.new_empty([x.shape[0], x.shape[1], oh, ow])


def _setup(ctx, inputs, output):
    x, f, up, down, padding, flip_filter, gain, impl = inputs
    ctx.save_for_backward(f)
    ctx.args = (check_args(x, f, up, down, padding, gain), flip_filter, gain, impl, x.shape[2:])


def _adjoint(geom: Geometry, flip_filter: bool, H: int, W: int) -> tuple[list[int], list[int], list[int], bool]:
    """(up, down, padding, flip_filter) of the upfirdn2d that is the gradient of one with `geom`
    on an H x W input."""
    (fw, fh), (upx, upy), (dx, dy) = geom.fsize, geom.up, geom.down
    ow, oh = geom.out_size
    # Adjoint of "read xu[o*down + k - p0]": zero-insert the gradient by `down`, correlate with
    # the reversed taps from p0' = fsize - 1 - p0, keep every up-th sample; p1' sizes it to H x W.
    pad = [
        fw - 1 - geom.pad0[0],
        W * upx - ow * dx + geom.pad0[0] - upx + 1,
        fh - 1 - geom.pad0[1],
        H * upy - oh * dy + geom.pad0[1] - upy + 1,
    ]
    return [dx, dy], [upx, upy], pad, not flip_filter


def _backward(ctx, grad):
    (f,) = ctx.saved_tensors
    geom, flip_filter, gain, impl, (H, W) = ctx.args
    up, down, pad, flip = _adjoint(geom, flip_filter, H, W)
    gx = upfirdn2d_op(grad, f, up, down, pad, flip, gain, impl)
    return gx, None, None, None, None, None, None, None


upfirdn2d_op.register_autograd(_backward, setup_context=_setup)


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Upsample (zero insertion), pad or crop (negative padding), FIR filter, downsample.

    `f`: None, 1-D (separable, applied along both axes) or 2-D taps, as from setup_filter.
    `impl`: "auto" (Triton on CUDA, reference elsewhere), "ref" or "triton". A filter that
    requires grad is served by the reference (the Triton backward treats filters as constants).
    Under torch.compile the op is one custom-op node (see above); in eager mode the reference
    runs as one autograd node, `FIRReference` (below).
    """
    geom = check_args(x, f, up, down, padding, gain)  # before dispatch: the same errors on every device
    triton = use_triton(impl, x, op="upfirdn2d")
    trainable_filter = f is not None and f.requires_grad and torch.is_grad_enabled()
    if (triton or torch.compiler.is_compiling()) and not trainable_filter:
        pad = [geom.pad0[0], geom.pad1[0], geom.pad0[1], geom.pad1[1]]
        return upfirdn2d_op(
            x,
            None if f is None else f.detach(),
            list(geom.up),
            list(geom.down),
            pad,
            bool(flip_filter),
            float(gain),
            "triton" if triton else "ref",
        )
    if trainable_filter:
        return upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    if not (x.requires_grad and torch.is_grad_enabled()) or torch.jit.is_tracing():  # no graph (or an export)
        return _reference(x, f, geom, bool(flip_filter), float(gain))
    return FIRReference.apply(x, f, geom, bool(flip_filter), float(gain))


class FIRReference(torch.autograd.Function):
    """The eager reference as one autograd node whose gradient is upfirdn2d again (`_adjoint`),
    so derivatives of every order stay upfirdn2d. Autograd through the reference's grouped
    conv2d instead costs R1 a per-channel loop of filter-gradient convolutions in the double
    backward (PyTorch's conv double backward computes the weight term even for a constant
    filter); this node has no filter gradient at all. A plain autograd.Function, not the custom
    op: the custom op's dispatch costs more than it saves on small CPU tensors."""

    @staticmethod
    def forward(ctx, x, f, geom: Geometry, flip_filter: bool, gain: float):
        ctx.save_for_backward(f)
        ctx.args = (geom, flip_filter, gain, x.shape[2:])
        return _reference(x, f, geom, flip_filter, gain)

    @staticmethod
    def backward(ctx, grad):
        (f,) = ctx.saved_tensors
        geom, flip_filter, gain, (H, W) = ctx.args
        (upx, upy), (dx, dy), pad, flip = _adjoint(geom, flip_filter, H, W)
        adjoint = Geometry((upx, upy), (dx, dy), (pad[0], pad[2]), (pad[1], pad[3]), geom.fsize, (W, H))
        if torch.is_grad_enabled():  # create_graph=True: a node again, for the next derivative
            gx = FIRReference.apply(grad, f, adjoint, flip, gain)
        else:
            gx = _reference(grad, f, adjoint, flip, gain)
        return gx, None, None, None, None


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Filter without resampling; the output keeps the input size (plus padding)."""
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Upsample by `up`, keeping the signal centred; the gain up**2 restores the mean."""
    upx, upy = parse_scaling(up, "up")
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    downx, downy = parse_scaling(down, "down")
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


@guard.register_case("upfirdn2d")
def _parity_case(impl, device):
    """The first-use check (kernels/guard.py): up 2 with a gain, and down 2, on a tiny image."""
    (x,) = guard.seeded_inputs(device, (2, 3, 9, 10))
    x.requires_grad_()
    f = setup_filter([1, 3, 3, 1], device=device)
    y = upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1], gain=4, impl=impl)
    return y + upfirdn2d(x, f, down=2, padding=[1, 1, 1, 1], impl=impl).sum(), [x]
