"""Modulated convolution (StyleGAN2) and the resampling convolution it builds on.

Semantics follow NVlabs stylegan2-ada-pytorch (`conv2d_resample`, `modulated_conv2d`). The
non-fused path scales the input by the style, runs one convolution with the shared weight and
scales the output by the demodulation coefficients rsqrt((s**2) @ Q + 1e-8), Q[o, i] = sum of
w[o, i]**2 over taps; the fused path folds the styles into per-sample weights (grouped conv).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from kernels.upfirdn2d import filter_size, parse_padding, upfirdn2d


def _conv(x, w, *, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    # torch convolutions correlate; flip_weight=False asks for a true convolution.
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    op = F.conv_transpose2d if transpose else F.conv2d
    return op(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor] = None, up: int = 1,
                    down: int = 1, padding=0, groups: int = 1, flip_weight: bool = True,
                    flip_filter: bool = False, impl: str = "auto") -> torch.Tensor:
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
        px0, px1, py0, py1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pad = [px0, px1, py0, py1]
    if kw == 1 and kh == 1 and down > 1 and up == 1:  # 1x1: filter at low cost, then the conv
        return _conv(upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, impl=impl), w,
                     groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=pad, gain=up ** 2, flip_filter=flip_filter, impl=impl)
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
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2,
                      flip_filter=flip_filter, impl=impl)
        return upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl=impl) if down > 1 else x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=pad, impl=impl)
    return _conv(x, w, groups=groups, flip_weight=flip_weight)


def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """rsqrt((s**2) @ Q^T + 1e-8), Q[o, i] = sum over taps of w[o, i]**2 -> [N, O]."""
    return (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()


def modulated_conv2d_ref(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                         demodulate=True, flip_weight=True, fused_modconv=True, impl="auto"):
    if x.ndim != 4 or weight.ndim != 4 or styles.ndim != 2:
        raise ValueError(f"expected x [N, I, H, W], weight [O, I, kh, kw], styles [N, I]; got "
                         f"{list(x.shape)}, {list(weight.shape)}, {list(styles.shape)}")
    N, I = x.shape[:2]
    O, wi, kh, kw = weight.shape
    if wi != I or styles.shape != (N, I):
        raise ValueError(f"channel mismatch: x has {I} channels, weight expects {wi}, styles is {list(styles.shape)}")
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(N, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight, impl=impl)
        if demodulate:
            x = x * demodulation_coefficients(weight, styles).to(x.dtype).reshape(N, -1, 1, 1)
        return x if noise is None else x + noise.to(x.dtype)
    w = weight.unsqueeze(0) * styles.reshape(N, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(N, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])  # the batch becomes groups of one grouped conv
    x = conv2d_resample(x, w.reshape(-1, I, kh, kw).to(x.dtype), f=resample_filter, up=up, down=down,
                        padding=padding, groups=N, flip_weight=flip_weight, impl=impl)
    x = x.reshape(N, -1, *x.shape[2:])
    return x if noise is None else x + noise.to(x.dtype)


def modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv=True, impl="auto"):
    if impl not in ("auto", "ref", "triton"):
        raise ValueError(f"impl={impl!r}: valid choices are auto, ref, triton")
    return modulated_conv2d_ref(x, weight, styles, noise=noise, up=up, down=down, padding=padding,
                                resample_filter=resample_filter, demodulate=demodulate,
                                flip_weight=flip_weight, fused_modconv=fused_modconv, impl=impl)
