"""upfirdn2d: upsample (zero insertion), pad or crop, FIR filter, downsample, in one op.

Semantics and signature follow NVlabs stylegan2-ada-pytorch `torch_utils/ops/upfirdn2d`, so
layers can be compared one for one. Reference implementation in plain PyTorch: every gradient
order comes from autograd.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

Scaling = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int]]


def parse_scaling(value: Scaling, name: str) -> tuple[int, int]:
    sx, sy = (value, value) if isinstance(value, int) else tuple(value)
    for s in (sx, sy):
        if not isinstance(s, int) or s < 1:
            raise ValueError(f"{name}={value!r}: must be a positive integer or a pair of them")
    return sx, sy


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """int, (px, py) or (x0, x1, y0, y1) -> (x0, x1, y0, y1); negative values crop."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) == 4:
        return tuple(padding)  # type: ignore[return-value]
    raise ValueError(f"padding={padding!r}: expected an int, (px, py) or (x0, x1, y0, y1)")


def filter_size(f: Optional[torch.Tensor]) -> tuple[int, int]:
    """(width, height) of a 1-D (separable) or 2-D filter; (1, 1) for None."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"filter f must be 1-D or 2-D, got shape {list(f.shape)}")
    return f.shape[-1], f.shape[0]


def setup_filter(f, device=None, normalize: bool = True, flip_filter: bool = False, gain: float = 1,
                 separable: Optional[bool] = None) -> torch.Tensor:
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


def _check(x: torch.Tensor, f: Optional[torch.Tensor]) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a 4-D tensor [N, C, H, W], got {getattr(x, 'shape', type(x))}")
    if not x.is_floating_point():
        raise ValueError(f"x must be floating point, got {x.dtype}")
    if f is not None and (not f.is_floating_point() or f.ndim not in (1, 2)):
        raise ValueError(f"f must be a 1-D or 2-D float tensor, got {f.dtype} {list(f.shape)}")


def upfirdn2d_ref(x: torch.Tensor, f: Optional[torch.Tensor], up: Scaling = 1, down: Scaling = 1,
                  padding: Padding = 0, flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    _check(x, f)
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    upx, upy = parse_scaling(up, "up")
    downx, downy = parse_scaling(down, "down")
    px0, px1, py0, py1 = parse_padding(padding)
    N, C, H, W = x.shape
    # Zero insertion: each pixel followed by up-1 zeros along each axis.
    x = x.reshape(N, C, H, 1, W, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1]).reshape(N, C, H * upy, W * upx)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0):x.shape[2] - max(-py1, 0), max(-px0, 0):x.shape[3] - max(-px1, 0)]
    fw, fh = filter_size(f)
    if x.shape[2] < fh or x.shape[3] < fw:
        raise ValueError(f"upfirdn2d: padded input {list(x.shape[2:])} is smaller than the filter {[fh, fw]}")
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:  # conv2d correlates; flipping makes it a true convolution
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat([C, 1, 1, 1]), groups=C)
    else:
        x = F.conv2d(x, f[None, None, None, :].repeat([C, 1, 1, 1]), groups=C)
        x = F.conv2d(x, f[None, None, :, None].repeat([C, 1, 1, 1]), groups=C)
    return x[:, :, ::downy, ::downx]


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl="auto"):
    if impl not in ("auto", "ref", "triton"):
        raise ValueError(f"impl={impl!r}: valid choices are auto, ref, triton")
    return upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)


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
