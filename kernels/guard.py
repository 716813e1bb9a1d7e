"""A guard for GPUs the kernels were never tested on: the first time `impl="auto"` would run a
Triton op on a device, a tiny parity check runs that op with Triton and with the reference
(forward and backward, a few hundred elements, milliseconds) and compares them. A mismatch, or
a kernel that fails to compile or launch there, logs one warning naming the op and the device,
and that op runs the reference on that device from then on. Users never get a silently wrong
result. Verdicts are cached per (op, device, Triton version) for the life of the process.

Settings (explicit setters, documented in docs/KERNELS.md; the trainer calls
`set_parity_check(cfg.train.kernel_check)` once per rank):

- `set_parity_check(False)` turns the check off: "auto" trusts Triton (a machine that passed
  `make gpu-check`, or a benchmark that must not pay a check).
- `set_auto_impl("default" | "triton" | "ref")`: what "auto" means. "default": Triton for CUDA
  tensors, the reference elsewhere; "ref": the reference everywhere (timing Triton off, as
  `python -m kernels.gpu_check` does); "triton": Triton wherever it can run, which includes CPU
  tensors under TRITON_INTERPRET=1 (tests of this guard and of the dispatch).
- `check_kernels(device)` runs every check now, eagerly: under torch.compile a check cannot
  run inside the trace, so an op not yet checked on that device runs the reference inside a
  compiled graph; call this before compiling to get the kernels.

Explicit `impl="triton"` is never checked or replaced: it is what the checks themselves and the
kernel tests call. Test hook: a wrong kernel is injected by replacing a launch function of
`kernels.triton_ops.*` (e.g. `monkeypatch.setattr(kernels.triton_ops.bias_act, "launch_fwd",
wrong)`); the check then sees the same wrong kernel as every later call
(tests/kernels/test_guard.py).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import torch

log = logging.getLogger("kernels")

AUTO_IMPLS = ("default", "triton", "ref")
OPS = ("upfirdn2d", "bias_act", "modulated_conv2d")
_state = {"check": True, "auto": "default"}
_verdicts: dict[tuple[str, str, str], bool] = {}
_details: dict[tuple[str, str, str], str] = {}
_lock = threading.Lock()


def set_parity_check(enabled: bool) -> None:
    """Run (True, the default) or skip (False) the first-use parity check of each Triton op."""
    if not isinstance(enabled, bool):
        raise ValueError(f"set_parity_check({enabled!r}): expected True or False")
    _state["check"] = enabled


def parity_check_enabled() -> bool:
    return _state["check"]


def set_auto_impl(impl: str) -> None:
    """What impl="auto" picks: "default" (Triton on CUDA), "triton" (also on CPU under the
    interpreter) or "ref" (the reference everywhere)."""
    if impl not in AUTO_IMPLS:
        raise ValueError(f"set_auto_impl({impl!r}): valid choices are {', '.join(AUTO_IMPLS)}")
    _state["auto"] = impl


def auto_impl() -> str:
    return _state["auto"]


def reset() -> None:
    """Forget every verdict (tests; the next use of each op checks again)."""
    with _lock:
        _verdicts.clear()
        _details.clear()


def verdicts() -> dict[str, dict]:
    """What the checks found so far: "op@device (triton version)" -> {ok, detail}."""
    return {
        f"{op}@{dev} (triton {ver})": {"ok": ok, "detail": _details.get((op, dev, ver), "")}
        for (op, dev, ver), ok in _verdicts.items()
    }


def _key(op: str, device: torch.device) -> tuple[str, str, str]:
    import triton

    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return op, str(device), triton.__version__


def triton_verified(op: str, device: torch.device) -> bool:
    """May "auto" run `op`'s Triton kernels on `device`? Runs the op's check on first use."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}: one of {', '.join(OPS)}")
    if not _state["check"]:
        return True
    key = _key(op, device)
    found = _verdicts.get(key)
    if found is not None:
        return found
    if torch.compiler.is_compiling():
        return False  # no check inside a trace: the reference, until check_kernels ran (see above)
    with _lock:
        if key not in _verdicts:
            ok, detail = run_check(op, device)
            _verdicts[key], _details[key] = ok, detail
            if not ok:
                log.warning(
                    "kernels: Triton %s disagrees with its reference on %s (triton %s): %s; %s runs the "
                    "PyTorch reference on this device from now on (make gpu-check shows more; "
                    "train.kernel_check=false skips this check)",
                    op,
                    key[1],
                    key[2],
                    detail,
                    op,
                )
    return _verdicts[key]


def check_kernels(device) -> dict[str, bool]:
    """Check every op on `device` now (eagerly) -> op -> whether "auto" will use Triton."""
    device = torch.device(device)
    return {op: triton_verified(op, device) for op in OPS}


# ---- the checks -------------------------------------------------------------------------------
# Each op module registers its case (register_case): a function (impl, device) -> (output,
# leaves) that builds tiny inputs with seeded_inputs (its own seeded CPU generator: the global
# RNG is not touched, so a training run draws the same numbers with or without the check) and
# runs the op. The check runs it with impl="triton" and impl="ref" and compares the outputs and
# the gradients of the leaves in fp32. (Registration, rather than importing the ops here, keeps
# the import graph acyclic: the ops import this module through kernels._dispatch.)

RTOL, ATOL = 1e-4, 1e-5
CASES: dict[str, Callable[[str, torch.device], tuple[torch.Tensor, list[torch.Tensor]]]] = {}


def register_case(op: str):
    def register(case):
        CASES[op] = case
        return case

    return register


def seeded_inputs(device, *shapes, seed: int = 1234) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen).to(device) for s in shapes]


def _run_case(op: str, device) -> list[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """One op's case -> [(outputs, gradients)] for Triton, then the reference."""
    results = []
    for impl in ("triton", "ref"):
        y, leaves = CASES[op](impl, device)
        (grad_out,) = seeded_inputs(device, y.shape, seed=99)
        grads = torch.autograd.grad(y, leaves, grad_out)
        results.append(([y.detach()], list(grads)))
    return results


def run_check(op: str, device) -> tuple[bool, str]:
    """-> (Triton agrees with the reference, a one-line detail)."""
    device = torch.device(device)
    # The comparison reads values on the host: under set_sync_debug_mode("error") that would
    # raise and be taken for a broken kernel, so the mode is lifted for the check.
    sync_mode = torch.cuda.get_sync_debug_mode() if device.type == "cuda" else None
    try:
        if sync_mode:
            torch.cuda.set_sync_debug_mode(0)
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
            (t_out, t_grads), (r_out, r_grads) = _run_case(op, device)
            return _compare(t_out + t_grads, r_out + r_grads)
    except Exception as exc:  # a kernel that does not compile or launch on this device
        return False, f"the check raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        if sync_mode:
            torch.cuda.set_sync_debug_mode(sync_mode)


def _compare(got_all: list[torch.Tensor], want_all: list[torch.Tensor]) -> tuple[bool, str]:
    worst = 0.0
    for name, got, want in zip(["output"] + [f"grad {i}" for i in range(len(got_all) - 1)], got_all, want_all):
        if got.shape != want.shape or not torch.isfinite(got).all():
            return False, f"{name}: shape {list(got.shape)} vs {list(want.shape)} or non-finite values"
        err = (got.float() - want.float()).abs()
        bound = ATOL + RTOL * want.float().abs()
        if bool((err > bound).any()):
            return False, f"{name}: max abs error {err.max().item():.3g} (tolerance {RTOL:g} rel + {ATOL:g} abs)"
        worst = max(worst, err.max().item())
    return True, f"max abs error {worst:.3g}"
