"""The first-use parity check (kernels/guard.py): a Triton op that disagrees with its reference on
a device is reported once and replaced by the reference there. On CPU, "auto" is made to mean
Triton through the interpreter (`set_auto_impl("triton")`), and a wrong kernel is injected by
replacing a launch function, the guard's documented test hook."""

import logging

import pytest
import torch

import kernels
from kernels import guard
from kernels.bias_act import bias_act_ref
from kernels.upfirdn2d import setup_filter, upfirdn2d_ref


@pytest.fixture(autouse=True)
def _fresh_guard():
    guard.reset()
    yield
    guard.reset()
    guard.set_auto_impl("default")
    guard.set_parity_check(True)


@pytest.fixture
def triton_auto(device):
    if device.type == "cpu":
        guard.set_auto_impl("triton")  # what "auto" means for CUDA tensors
    return device


def _wrong_bias_act(monkeypatch):
    from kernels.triton_ops import bias_act as tk

    real = tk.launch_fwd

    def launch_fwd(x, b, params, out, **kw):  # a kernel that is off by 0.01 everywhere
        real(x, b, params, out, **kw)
        return out.add_(0.01)

    monkeypatch.setattr(tk, "launch_fwd", launch_fwd)


def _warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "kernels"]


def test_a_passing_check_lets_auto_use_triton(triton_auto):
    x, b = torch.randn(2, 5, 4, 4, device=triton_auto), torch.randn(5, device=triton_auto)
    y = kernels.bias_act(x, b, act="lrelu", clamp=1.0)
    torch.testing.assert_close(y, bias_act_ref(x, b, act="lrelu", clamp=1.0))
    found = guard.verdicts()
    assert len(found) == 1 and next(iter(found.values()))["ok"], found
    assert "bias_act@" in next(iter(found))


def test_a_wrong_kernel_warns_once_and_falls_back_to_the_reference(triton_auto, monkeypatch, caplog):
    _wrong_bias_act(monkeypatch)
    x, b = torch.randn(2, 5, 4, 4, device=triton_auto), torch.randn(5, device=triton_auto)
    want = bias_act_ref(x, b, act="lrelu")
    with caplog.at_level(logging.WARNING, logger="kernels"):
        for _ in range(3):
            torch.testing.assert_close(kernels.bias_act(x, b, act="lrelu"), want)
    (warning,) = _warnings(caplog)  # one warning, naming the op and the device
    assert "bias_act" in warning.getMessage() and str(triton_auto) in warning.getMessage()
    assert "max abs error" in warning.getMessage()
    assert not guard.triton_verified("bias_act", triton_auto)
    # Only that op falls back: upfirdn2d still passes its own check.
    assert guard.triton_verified("upfirdn2d", triton_auto)
    # Without the guard the wrong kernel's output reaches the caller (what the guard prevents).
    guard.set_parity_check(False)
    assert not torch.allclose(kernels.bias_act(x, b, act="lrelu"), want)


def test_a_kernel_that_fails_on_the_device_falls_back(triton_auto, monkeypatch, caplog):
    from kernels.triton_ops import upfirdn2d as tk

    def launch(*args, **kw):
        raise RuntimeError("no kernel image is available for execution on the device")

    monkeypatch.setattr(tk, "launch", launch)
    x, f = torch.randn(1, 2, 8, 8, device=triton_auto), setup_filter([1, 3, 3, 1], device=triton_auto)
    with caplog.at_level(logging.WARNING, logger="kernels"):
        y = kernels.upsample2d(x, f)
    torch.testing.assert_close(y, upfirdn2d_ref(x, f, up=2, padding=[2, 1, 2, 1], gain=4))
    (warning,) = _warnings(caplog)
    assert "upfirdn2d" in warning.getMessage() and "no kernel image" in warning.getMessage()


def test_modulated_conv2d_check_catches_a_wrong_epilogue(triton_auto, monkeypatch):
    from kernels.triton_ops import modconv as tk

    real = tk.launch_fwd
    monkeypatch.setattr(tk, "launch_fwd", lambda *a, **kw: real(*a, **kw).mul_(1.001))
    assert kernels.check_kernels(triton_auto) == {"upfirdn2d": True, "bias_act": True, "modulated_conv2d": False}


def test_the_check_leaves_the_global_rng_alone(triton_auto):
    state = torch.get_rng_state()
    assert all(kernels.check_kernels(triton_auto).values())
    assert torch.equal(torch.get_rng_state(), state)


def test_turned_off_the_check_never_runs(triton_auto, monkeypatch):
    monkeypatch.setattr(guard, "run_check", lambda *a: pytest.fail("the check ran"))
    kernels.set_parity_check(False)
    x = torch.randn(3, 4, device=triton_auto)
    torch.testing.assert_close(kernels.bias_act(x, act="relu"), bias_act_ref(x, act="relu"))
    assert guard.verdicts() == {}


def test_auto_impl_ref_turns_triton_off(monkeypatch):
    from kernels import _dispatch

    monkeypatch.setattr(guard, "run_check", lambda *a: pytest.fail("the check ran"))
    kernels.set_auto_impl("ref")
    assert not _dispatch.use_triton("auto", torch.zeros(1), op="bias_act")
    assert _dispatch.use_triton("triton", torch.zeros(1), op="bias_act")  # explicit impl: no check, no switch


@pytest.mark.parametrize(
    "call, msg",
    [
        (lambda: kernels.set_auto_impl("cuda"), "valid choices"),
        (lambda: kernels.set_parity_check("yes"), "True or False"),
        (lambda: guard.triton_verified("conv", torch.device("cpu")), "unknown op"),
    ],
)
def test_bad_settings_are_named(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


def test_config_key_turns_the_check_off():
    from pathlib import Path

    from trainer.config import load_config

    root = Path(__file__).resolve().parents[2]
    assert load_config(root / "configs/digits.yaml").train.kernel_check is True
    assert load_config(root / "configs/digits.yaml", ["train.kernel_check=false"]).train.kernel_check is False


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_check_is_not_mistaken_for_a_broken_kernel_under_sync_debug_mode():
    torch.cuda.set_sync_debug_mode("error")
    try:
        assert kernels.check_kernels("cuda") == {op: True for op in guard.OPS}
        assert torch.cuda.get_sync_debug_mode() == 2  # restored
    finally:
        torch.cuda.set_sync_debug_mode("default")
