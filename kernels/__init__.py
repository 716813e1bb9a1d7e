"""Fused ops for StyleGAN-family networks: PyTorch references (and Triton kernels on GPU).

Public signatures follow NVlabs stylegan2-ada-pytorch `torch_utils/ops`, each with `impl=`
("auto" | "ref" | "triton"). This package imports only torch (and triton, lazily).
"""

from kernels.bias_act import bias_act
from kernels.guard import check_kernels, set_auto_impl, set_parity_check
from kernels.modulated_conv2d import conv2d_resample, modulated_conv2d
from kernels.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = [
    "bias_act",
    "check_kernels",
    "conv2d_resample",
    "downsample2d",
    "filter2d",
    "modulated_conv2d",
    "set_auto_impl",
    "set_parity_check",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
]
