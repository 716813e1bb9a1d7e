"""Bad device input gets a correct result or one clear error: tensors on another device than x,
bf16 on a GPU without bf16, and a GPU other than the current one (`--device cuda:1`)."""

import pytest
import torch

import kernels
from kernels import _dispatch
from kernels.bias_act import bias_act_ref
from kernels.modulated_conv2d import modulated_conv2d_ref
from kernels.triton_ops.device import on_device
from kernels.upfirdn2d import upfirdn2d_ref


def _modconv_args(device="cpu"):
    g = torch.Generator().manual_seed(0)
    x, w, s = (torch.randn(shape, generator=g).to(device) for shape in ((2, 4, 8, 8), (5, 4, 3, 3), (2, 4)))
    return x, w, s + 1


@pytest.mark.parametrize("name", ["weight", "styles", "bias", "noise", "resample_filter"])
def test_a_tensor_on_another_device_is_named(name):
    x, w, s = _modconv_args()
    kwargs = {
        "weight": w,
        "styles": s,
        "bias": torch.zeros(5),
        "noise": torch.zeros(2, 1, 8, 8),
        "resample_filter": kernels.setup_filter([1, 3, 3, 1]),
    }
    kwargs[name] = kwargs[name].to("meta")
    for impl in ("auto", "ref"):
        fn = kernels.modulated_conv2d if impl == "auto" else modulated_conv2d_ref
        with pytest.raises(ValueError, match=f"{name} is on meta but x is on cpu"):
            fn(
                x,
                kwargs["weight"],
                kwargs["styles"],
                noise=kwargs["noise"],
                padding=1,
                resample_filter=kwargs["resample_filter"],
                bias=kwargs["bias"],
                act="lrelu",
            )


def test_bf16_on_a_gpu_without_bf16_is_detected(monkeypatch):
    monkeypatch.setattr(_dispatch, "_capability", lambda device: (7, 5))  # a T4
    assert _dispatch.unsupported_dtype([torch.zeros(1, dtype=torch.bfloat16)])
    assert not _dispatch.unsupported_dtype([torch.zeros(1)])
    monkeypatch.setattr(_dispatch, "_capability", lambda device: (8, 0))
    assert not _dispatch.unsupported_dtype([torch.zeros(1, dtype=torch.bfloat16)])


def test_launch_device_guard_is_a_no_op_on_cpu():
    with on_device(torch.zeros(1)):
        pass


needs_two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")


@pytest.mark.gpu
@needs_two_gpus
def test_every_op_runs_on_a_gpu_that_is_not_the_current_one():
    dev = torch.device("cuda", 1)
    assert torch.cuda.current_device() == 0
    x, w, s = _modconv_args(dev)
    f = kernels.setup_filter([1, 3, 3, 1], device=dev)
    torch.testing.assert_close(kernels.bias_act(x, act="lrelu", impl="triton"), bias_act_ref(x, act="lrelu"))
    torch.testing.assert_close(
        kernels.upsample2d(x, f, impl="triton"), upfirdn2d_ref(x, f, up=2, padding=[2, 1, 2, 1], gain=4)
    )
    got = kernels.modulated_conv2d(
        x, w, s, padding=1, fused_modconv=False, bias=torch.ones(5, device=dev), act="lrelu", impl="triton"
    )
    want = modulated_conv2d_ref(x, w, s, padding=1, fused_modconv=False, bias=torch.ones(5, device=dev), act="lrelu")
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability() >= (8, 0),
    reason="needs a CUDA GPU without bf16 (before sm_80)",
)
def test_bf16_on_an_old_gpu_is_a_clear_error_or_the_reference():
    x = torch.randn(2, 3, 4, 4, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="bfloat16 needs a GPU of compute capability 8.0"):
        kernels.bias_act(x, act="lrelu", impl="triton")
    torch.testing.assert_close(kernels.bias_act(x, act="lrelu"), bias_act_ref(x, act="lrelu"))
