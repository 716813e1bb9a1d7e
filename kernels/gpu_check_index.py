"""The 64-bit indexing checks of `python -m kernels.gpu_check`: each Triton op on tensors whose
offsets pass 2**31 (1.7e10 elements where the GPU has the memory), against the reference on
the part that matters. The interpreter tests probe the index helpers at such offsets
(tests/kernels/test_index_64bit.py); these run the compiled kernels end to end. In plumbing mode
(no GPU) the same functions run at tiny sizes under the interpreter.

- bias_act without a bias: one row of n elements (the int32 tile index bug of 2026-11).
- upfirdn2d on a view whose row stride is 2**18: within-image offsets iy * sxh past 2**31.
- the modconv epilogue with [H, W] noise that is such a view: noise offsets past 2**31.
"""

from __future__ import annotations

import torch

BIG = 17 * 10**9  # 1.7e10 elements: 34 GB per bf16 buffer


def plan(device: torch.device, plumbing: bool) -> dict:
    """Sizes: the buffer's element count and the row stride of the strided views."""
    if plumbing:
        return {"n": 1 << 16, "row_stride": 1 << 10, "width": 16}
    free, _ = torch.cuda.mem_get_info(device)
    # bias_act holds input and output (2 buffers of n bf16) at once; keep 15% for the rest.
    n = BIG if 4 * BIG < 0.85 * free else (2**31 + (1 << 20))
    if 4 * n >= 0.85 * free:
        raise RuntimeError(f"{free / 2**30:.0f} GiB free on {device}: the 64-bit checks need {4 * n / 2**30:.0f} GiB")
    return {"n": n, "row_stride": 1 << 18, "width": 64}


def _close(got: torch.Tensor, want: torch.Tensor) -> float:
    err = (got.float() - want.float()).abs().max().item()
    scale = want.float().abs().max().item()
    if not err <= 2e-2 * max(scale, 1.0):  # bf16 storage: ~3 significant digits
        raise AssertionError(f"max abs error {err:.3g} (values up to {scale:.3g})")
    return err


def bias_act_one_row(device, n: int) -> dict:
    from kernels.bias_act import KernelConfig, bias_act_ref, bias_act_triton

    x = torch.zeros(n, dtype=torch.bfloat16, device=device)
    tail = 4096
    x[-tail:] = torch.linspace(-2, 2, tail, device=device)
    out = torch.full_like(x, float("nan"))
    bias_act_triton(x, None, KernelConfig.of("lrelu", None, None, None, 1), out=out)
    # The output was poisoned: every element must be written. Counted in chunks (a bool mask of
    # 1.7e10 elements would be another 17 GB).
    chunk = 1 << 30
    unwritten = int(sum(torch.isnan(out[i : i + chunk]).sum() for i in range(0, n, chunk)).item())
    err = _close(out[-2 * tail :], bias_act_ref(x[-2 * tail :].float(), act="lrelu"))
    del x, out
    if unwritten:
        raise AssertionError(f"{unwritten} output elements not written")
    return {"elements": n, "max_abs_err": err}


def upfirdn2d_strided(device, buf: torch.Tensor, row_stride: int, width: int) -> dict:
    from kernels.upfirdn2d import Geometry, check_args, setup_filter, upfirdn2d_ref, upfirdn2d_triton

    rows = buf.numel() // row_stride
    x = buf[: rows * row_stride].view(1, 1, rows, row_stride)[:, :, :, :width]  # row stride 2**18
    x.normal_()
    f = setup_filter([1, 3, 3, 1], device=device)
    geom: Geometry = check_args(x, f, 1, 2, [1, 1, 1, 1], 1)
    got = upfirdn2d_triton(x, f, geom, False, 1.0)
    want = upfirdn2d_ref(x.contiguous().float(), f, down=2, padding=[1, 1, 1, 1])
    reach = (rows - 1) * row_stride + width
    return {"rows": rows, "row_stride": row_stride, "max_offset": reach, "max_abs_err": _close(got, want)}


def epilogue_strided_noise(device, buf: torch.Tensor, row_stride: int, width: int) -> dict:
    from kernels.bias_act import KernelConfig
    from kernels.modulated_conv2d import epilogue_ref, epilogue_triton

    rows = buf.numel() // row_stride
    noise = buf[: rows * row_stride].view(rows, row_stride)[:, :width]  # [H, W], row stride 2**18
    noise.normal_()
    gen = torch.Generator(device=device).manual_seed(0)
    c = torch.randn(1, 2, rows, width, device=device, dtype=torch.bfloat16, generator=gen)
    bias = torch.tensor([0.5, -0.5], device=device, dtype=torch.bfloat16)
    cfg = KernelConfig.of("lrelu", None, None, 256, 1)
    got = epilogue_triton(c, None, noise, bias, cfg)
    want = epilogue_ref(c.float(), None, noise.float(), bias.float(), "lrelu", None, None, 256)
    return {"rows": rows, "row_stride": row_stride, "max_abs_err": _close(got, want)}


def run(device: torch.device, plumbing: bool) -> dict:
    """All three checks -> {"plan": sizes, check name: result or {"error": ...}}, with
    status "failed" if any failed (the others still run)."""
    sizes = plan(device, plumbing)
    results: dict = {"plan": sizes, "int64_indexing": sizes["n"] >= 2**31}
    failed = []
    buf = None
    for name in ("bias_act_one_row", "upfirdn2d_strided", "epilogue_strided_noise"):
        try:
            if name == "bias_act_one_row":
                results[name] = bias_act_one_row(device, sizes["n"])
            else:
                if buf is None:  # allocated after bias_act freed its two buffers
                    buf = torch.empty(sizes["n"], dtype=torch.bfloat16, device=device)
                fn = upfirdn2d_strided if name == "upfirdn2d_strided" else epilogue_strided_noise
                results[name] = fn(device, buf, sizes["row_stride"], sizes["width"])
        except Exception as exc:  # noqa: BLE001 - every failure is reported, the other checks still run
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append(name)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    buf = None
    if failed:
        results.update(status="failed", error=f"64-bit indexing checks failed: {', '.join(failed)}")
    return results
