"""Modulated convolution (StyleGAN2) and the resampling convolution it builds on.

Semantics follow NVlabs stylegan2-ada-pytorch (`conv2d_resample`, `modulated_conv2d`). The
non-fused path scales the input by the style, runs one convolution with the shared weight and
scales the output by the demodulation coefficients rsqrt((s**2) @ Q + 1e-8), Q[o, i] = sum of
w[o, i]**2 over taps; the fused path folds the styles into per-sample weights (grouped conv).

The Triton path keeps the convolution on cuDNN (through conv2d_resample, whose FIR steps use
the Triton upfirdn2d) and fuses everything after it (demodulation, noise, bias, activation,
gain, clamp) into one kernel: kernels/triton_ops/modconv.py.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from kernels import guard
from kernels._dispatch import acc_dtype, check_devices, use_triton
from kernels.bias_act import KernelConfig, bias_act_ref, forward_ref, grad_ref, grad_wanted
from kernels.bias_act import check_args as check_bias_act
from kernels.upfirdn2d import filter_size, parse_padding, upfirdn2d


def _conv(x, w, *, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    # torch convolutions correlate; flip_weight=False asks for a true convolution.
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    op = F.conv_transpose2d if transpose else F.conv2d
    return op(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding=0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
    impl: str = "auto",
) -> torch.Tensor:
    """2-D convolution with optional FIR upsampling (before) or downsampling (after) by 2."""
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"x and w must be 4-D, got x {list(x.shape)} and w {list(w.shape)}")
    if up not in (1, 2) or down not in (1, 2):
        raise ValueError(f"up={up}, down={down}: each must be 1 or 2")
    if x.shape[1] != w.shape[1] * groups:
        raise ValueError(f"x has {x.shape[1]} channels but w expects {w.shape[1]} x groups={groups}")
    out_ch, in_per_group, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)
    if up > 1:
        px0, px1, py0, py1 = (
            px0 + (fw + up - 1) // 2,
            px1 + (fw - up) // 2,
            py0 + (fh + up - 1) // 2,
            py1 + (fh - up) // 2,
        )
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pad = [px0, px1, py0, py1]
    if kw == 1 and kh == 1 and down > 1 and up == 1:  # 1x1: filter at low cost, then the conv
        return _conv(
            upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, impl=impl),
            w,
            groups=groups,
            flip_weight=flip_weight,
        )
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=pad, gain=up**2, flip_filter=flip_filter, impl=impl)
    if down > 1 and up == 1:  # filter, then a strided conv skips the discarded pixels
        x = upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, impl=impl)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:  # transposed strided conv does zero insertion and conv at once, then the FIR
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_ch // groups, kh, kw)
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(
            x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2, flip_filter=flip_filter, impl=impl
        )
        return upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl=impl) if down > 1 else x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=pad, impl=impl)
    return _conv(x, w, groups=groups, flip_weight=flip_weight)


def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """rsqrt((s**2) @ Q^T + 1e-8), Q[o, i] = sum over taps of w[o, i]**2 -> [N, O]."""
    return (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()


def _check_modconv(x, weight, styles, bias) -> None:
    for name, t, nd in (("x", x, 4), ("weight", weight, 4), ("styles", styles, 2)):
        if not isinstance(t, torch.Tensor) or t.ndim != nd or not t.is_floating_point():
            raise ValueError(
                f"{name} must be a {nd}-D float tensor, got {getattr(t, 'dtype', type(t))} "
                f"{list(getattr(t, 'shape', []))}"
            )
    N, I = x.shape[:2]
    if weight.shape[1] != I or styles.shape != (N, I):
        raise ValueError(
            f"channel mismatch: x [N, I, H, W] is {list(x.shape)}, weight [O, I, kh, kw] is "
            f"{list(weight.shape)}, styles [N, I] is {list(styles.shape)}"
        )
    if bias is not None and (not isinstance(bias, torch.Tensor) or bias.shape != (weight.shape[0],)):
        raise ValueError(f"bias must be a [O={weight.shape[0]}] tensor, got {list(getattr(bias, 'shape', []))}")
    check_devices(x, weight=weight, styles=styles, bias=bias)


def _check_noise(noise, out_shape) -> None:
    if noise is None:
        return
    if not isinstance(noise, torch.Tensor):
        raise ValueError(f"noise must be a tensor or None, got {type(noise).__name__}")
    try:
        ok = torch.broadcast_shapes(noise.shape, out_shape) == out_shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"noise of shape {list(noise.shape)} does not broadcast to the output "
            f"{list(out_shape)}; use [N, 1, H, W] or [H, W]"
        )


def _modulated_conv(
    x, weight, styles, up, down, padding, resample_filter, demodulate, flip_weight, fused_modconv, impl
):
    """The convolution part shared by both implementations -> (conv output, scale [N, O] or None).
    The demodulation scale is applied later (by the epilogue) on the non-fused path."""
    N, I = x.shape[:2]
    O, _, kh, kw = weight.shape
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(N, -1, 1, 1)
        x = conv2d_resample(
            x,
            weight.to(x.dtype),
            f=resample_filter,
            up=up,
            down=down,
            padding=padding,
            flip_weight=flip_weight,
            impl=impl,
        )
        return x, (demodulation_coefficients(weight, styles).to(x.dtype) if demodulate else None)
    w = weight.unsqueeze(0) * styles.reshape(N, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(N, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])  # the batch becomes groups of one grouped conv
    x = conv2d_resample(
        x,
        w.reshape(-1, I, kh, kw).to(x.dtype),
        f=resample_filter,
        up=up,
        down=down,
        padding=padding,
        groups=N,
        flip_weight=flip_weight,
        impl=impl,
    )
    return x.reshape(N, -1, *x.shape[2:]), None


def epilogue_ref(c, scale, noise, bias, act, alpha, gain, clamp):
    """Reference of what follows the convolution: demodulate, add noise, then bias_act."""
    if scale is not None:
        c = c * scale.to(c.dtype).reshape(*scale.shape, 1, 1)
    if noise is not None:
        c = c + noise.to(c.dtype)
    return bias_act_ref(c, None if bias is None else bias.to(c.dtype), act=act, alpha=alpha, gain=gain, clamp=clamp)


def modulated_conv2d_ref(
    x,
    weight,
    styles,
    noise=None,
    up=1,
    down=1,
    padding=0,
    resample_filter=None,
    demodulate=True,
    flip_weight=True,
    fused_modconv=True,
    impl="ref",
    *,
    bias=None,
    act="linear",
    alpha=None,
    gain=None,
    clamp=None,
):
    _check_modconv(x, weight, styles, bias)
    check_devices(x, noise=noise, resample_filter=resample_filter)
    c, scale = _modulated_conv(
        x, weight, styles, up, down, padding, resample_filter, demodulate, flip_weight, fused_modconv, impl
    )
    _check_noise(noise, c.shape)
    return epilogue_ref(c, scale, noise, bias, act, alpha, gain, clamp)


# ---- custom ops (torch.library) ----------------------------------------------------------------
# The epilogue and its one-pass backward are opaque nodes for torch.compile, running "triton"
# (the fused kernels) or "ref" (PyTorch: what a CPU compile dispatches, so the graph is the same
# on every device). Arguments arrive resolved by KernelConfig.of.
#
# Double backward (R1, path length: create_graph=True) is served by PyTorch ops: when the
# backward is itself being recorded, it recomputes the epilogue with differentiable ops and
# differentiates those, so gradients of every order are right, at the reference's speed. (A
# custom-op backward can only be differentiated through ops with autograd formulas, and the
# fused backward kernel has no derivative of its own.)


def _epilogue_forward_ref(c, scale, noise, bias, cfg: KernelConfig):
    if scale is not None:
        c = c * scale.to(c.dtype).reshape(*scale.shape, 1, 1)
    if noise is not None:
        c = c + noise.to(c.dtype)
    return forward_ref(c, bias, cfg)


@torch.library.custom_op("hiresgan::modconv_epilogue", mutates_args=())
def epilogue_op(
    c: torch.Tensor,
    scale: Optional[torch.Tensor],
    noise: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
    act: str,
    alpha: float,
    gain: float,
    clamp: Optional[float],
    impl: str,
) -> torch.Tensor:
    cfg = KernelConfig(act, alpha, gain, clamp, 1)
    if impl == "triton":
        return epilogue_triton(c, scale, noise, bias, cfg)
    return _epilogue_forward_ref(c, scale, noise, bias, cfg).contiguous()


@epilogue_op.register_fake
def _(c, scale, noise, bias, act, alpha, gain, clamp, impl):
    return torch.empty(c.shape, dtype=c.dtype, device=c.device)


@torch.library.custom_op("hiresgan::modconv_epilogue_bwd", mutates_args=())
def epilogue_bwd_op(
    g: torch.Tensor,
    c: torch.Tensor,
    scale: Optional[torch.Tensor],
    noise: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
    act: str,
    alpha: float,
    gain: float,
    clamp: Optional[float],
    impl: str,
    wanted: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> gradients of (c, scale, noise, bias), each in its input's shape and dtype; an empty
    tensor for one not `wanted` (or absent)."""
    cfg = KernelConfig(act, alpha, gain, clamp, 1)
    if impl == "triton":
        from kernels.triton_ops import modconv as tk

        gc, gnoise, gscale, gbias = tk.launch_bwd(
            g.contiguous(),
            c.contiguous(),
            _as_scale(scale, c),
            noise,
            _as_bias(bias, c),
            cfg.params(acc_dtype(c.dtype), c.device),
            act=act,
            clamp=clamp is not None,
            want_noise_grad=wanted[2],
        )
        gbias = None if gbias is None else gbias.sum(0)
    else:
        z = c if scale is None else c * scale.to(c.dtype).reshape(*scale.shape, 1, 1)
        z = z if noise is None else z + noise.to(c.dtype)
        gz = grad_ref(g, z if bias is None else z + bias.to(c.dtype).reshape(-1, 1, 1), cfg)
        gc = gz if scale is None else gz * scale.to(c.dtype).reshape(*scale.shape, 1, 1)
        gscale = None if scale is None else (gz * c).sum([2, 3])
        gnoise = None if noise is None else gz.sum_to_size(noise.shape)
        gbias = None if bias is None else gz.sum([0, 2, 3])
    out = []
    for grad, like, want in zip((gc, gscale, gnoise, gbias), (c, scale, noise, bias), wanted):
        out.append(grad.to(like.dtype).contiguous() if want and like is not None else c.new_empty(0))
    return tuple(out)


@epilogue_bwd_op.register_fake
def _(g, c, scale, noise, bias, act, alpha, gain, clamp, impl, wanted):
    return tuple(
        torch.empty(like.shape, dtype=like.dtype, device=c.device) if want and like is not None else c.new_empty(0)
        for like, want in zip((c, scale, noise, bias), wanted)
    )


def _epilogue_setup(ctx, inputs, output):
    *tensors, act, alpha, gain, clamp, impl = inputs
    ctx.save_for_backward(*tensors)
    ctx.args = (act, alpha, gain, clamp, impl)


def _epilogue_backward(ctx, g):
    c, scale, noise, bias = inputs = ctx.saved_tensors
    act, alpha, gain, clamp, impl = ctx.args
    wanted = [i == 0 or grad_wanted(ctx, i, t) for i, t in enumerate(inputs)]
    grads = [None] * 4
    if torch.is_grad_enabled():  # create_graph=True: differentiate PyTorch ops instead (see above)
        with torch.enable_grad():
            y = _epilogue_forward_ref(c, scale, noise, bias, KernelConfig(act, alpha, gain, clamp, 1))
            idx = [i for i in range(4) if wanted[i] and ctx.needs_input_grad[i]]
            found = torch.autograd.grad(y, [inputs[i] for i in idx], g, create_graph=True, allow_unused=True)
        for i, grad in zip(idx, found):
            grads[i] = grad if grad is not None else torch.zeros_like(inputs[i])
    else:
        found = epilogue_bwd_op(g, c, scale, noise, bias, act, alpha, gain, clamp, impl, wanted)
        grads = [grad if want and t is not None else None for grad, want, t in zip(found, wanted, inputs)]
    return (*grads, None, None, None, None, None)


epilogue_op.register_autograd(_epilogue_backward, setup_context=_epilogue_setup)


def _as_scale(scale, c):
    return None if scale is None else scale.detach().to(c.dtype).contiguous()


def _as_bias(bias, c):
    return None if bias is None else bias.detach().to(c.dtype).contiguous()


def epilogue_triton(c, scale, noise, bias, cfg, out=None) -> torch.Tensor:
    """One forward launch of the epilogue kernel, no autograd; `out` gets every element."""
    from kernels.triton_ops import modconv as tk

    c = c.detach().contiguous()
    out = torch.empty_like(c) if out is None else out
    if out.numel():
        tk.launch_fwd(
            c,
            _as_scale(scale, c),
            None if noise is None else noise.detach(),
            _as_bias(bias, c),
            cfg.params(acc_dtype(c.dtype), c.device),
            out,
            act=cfg.act,
            clamp=cfg.clamp is not None,
        )
    return out


def modulated_conv2d(
    x,
    weight,
    styles,
    noise=None,
    up=1,
    down=1,
    padding=0,
    resample_filter=None,
    demodulate=True,
    flip_weight=True,
    fused_modconv=True,
    impl="auto",
    *,
    bias=None,
    act="linear",
    alpha=None,
    gain=None,
    clamp=None,
):
    """StyleGAN2 modulated convolution, then (optionally, fused) bias_act.

    Equal to `bias_act(modulated_conv2d(...), bias, act=act, alpha=alpha, gain=gain, clamp=clamp)`
    of the published op; passing bias/act here lets the Triton path do demodulation, noise, bias,
    activation, gain and clamp in one pass after the (cuDNN) convolution. `impl`: "auto" (Triton
    on CUDA, reference elsewhere), "ref" or "triton"."""
    _check_modconv(x, weight, styles, bias)
    check_devices(x, noise=noise, resample_filter=resample_filter)
    check_bias_act(x, None, 1, act, alpha, gain, clamp)
    triton = use_triton(impl, x, op="modulated_conv2d")
    if not triton and not torch.compiler.is_compiling():  # eager reference: plain PyTorch
        return modulated_conv2d_ref(
            x,
            weight,
            styles,
            noise=noise,
            up=up,
            down=down,
            padding=padding,
            resample_filter=resample_filter,
            demodulate=demodulate,
            flip_weight=flip_weight,
            fused_modconv=fused_modconv,
            impl="ref",
            bias=bias,
            act=act,
            alpha=alpha,
            gain=gain,
            clamp=clamp,
        )
    c, scale = _modulated_conv(
        x, weight, styles, up, down, padding, resample_filter, demodulate, flip_weight, fused_modconv, impl
    )
    _check_noise(noise, c.shape)
    cfg = KernelConfig.of(act, alpha, gain, clamp, 1)
    return epilogue_op(c, scale, noise, bias, cfg.act, cfg.alpha, cfg.gain, cfg.clamp, "triton" if triton else "ref")


@guard.register_case("modulated_conv2d")
def _parity_case(impl, device):
    """The first-use check (kernels/guard.py): the generator's non-fused 3x3 layer with noise,
    bias, lrelu and clamp."""
    x, w, s, noise, b = guard.seeded_inputs(device, (2, 4, 6, 6), (5, 4, 3, 3), (2, 4), (2, 1, 6, 6), (5,))
    leaves = [x.requires_grad_(), w.requires_grad_(), (s + 1).requires_grad_(), b.requires_grad_()]
    y = modulated_conv2d(
        *leaves[:3], noise=noise, padding=1, fused_modconv=False, bias=leaves[3], act="lrelu", clamp=2.0, impl=impl
    )
    return y, leaves
