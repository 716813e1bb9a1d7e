"""One activation table and one tile rule for the reference and the kernels; 64-bit indexing."""

import ast
from pathlib import Path

import pytest
import torch
import triton  # tests/conftest.py has set TRITON_INTERPRET (no GPU) before this import
import triton.language as tl

from kernels.activations import ACTIVATIONS, KERNEL_ACTS, kernel_code
from kernels.bias_act import KernelConfig
from kernels.triton_ops.bias_act import tile_index

TRITON_OPS = Path(__file__).resolve().parents[2] / "kernels" / "triton_ops"


def test_kernel_codes_come_from_the_shared_table():
    from kernels.triton_ops import bias_act as tk

    codes = [a.code for a in ACTIVATIONS.values() if a.code is not None]
    assert len(codes) == len(set(codes)) == len(KERNEL_ACTS)
    for name, spec in ACTIVATIONS.items():  # the kernels' branch constants are the table's codes
        const = getattr(tk, "_" + name.upper(), None)
        assert (const is None) == (spec.code is None), name
        assert const is None or const.value == spec.code
    # Every activation reaches a kernel: directly, or rewritten by KernelConfig (selu -> elu).
    for name in ACTIVATIONS:
        assert KernelConfig.of(name, None, None, None, 1).act in {KERNEL_ACTS[c] for c in codes}


def test_unknown_activation_name_is_refused_at_launch(device):
    from kernels.triton_ops import bias_act as tk

    x = torch.randn(8, device=device)
    params = KernelConfig.of("lrelu", None, None, None, 1).params(torch.float32, device)
    for act, msg in (("gelu", "act='gelu': valid choices"), ("selu", "rewritten before launch")):
        with pytest.raises(ValueError, match=msg):
            tk.launch_fwd(x, None, params, torch.empty_like(x), C=1, inner=8, act=act, clamp=False)
    with pytest.raises(ValueError, match="act='gelu'"):
        kernel_code("gelu")


@pytest.mark.parametrize("code", [6, 9, -1])
def test_unknown_activation_code_does_not_compile(device, code):
    # Before: every code past the last branch computed swish, silently.
    from kernels.triton_ops import bias_act as tk

    x = torch.randn(8, device=device)
    params = KernelConfig.of("lrelu", None, None, None, 1).params(torch.float32, device)
    with pytest.raises(Exception, match="unknown activation code"):
        tk.bias_act_fwd_kernel[(1,)](
            x,
            x,
            x,
            torch.empty_like(x),
            1,
            1,
            8,
            1,
            params.alpha,
            params.gain,
            0.0,
            P_PTR=False,
            HAS_BIAS=False,
            ACT=code,
            CLAMP=False,
            ACC=tk.tl.float32,
            INT64=False,
            BR=1,
            BI=8,
        )


def test_one_tile_rule(monkeypatch):
    from kernels.triton_ops import tiles

    monkeypatch.setenv("TRITON_INTERPRET", "0")  # the GPU budget
    assert tiles.tile_shape(10**6) == (1024,)
    assert tiles.tile_shape(3, 5) == (4, 8)
    assert tiles.tile_shape(64, 16, 4096, caps=(None, None, 256)) == (1, 4, 256)  # inner first, capped
    assert tiles.tile_shape(512, 4, 4, caps=(None, None, 256)) == (64, 4, 4)  # small layers: many planes
    for shape in ((7, 9, 11), (1, 1), (3000,)):
        assert torch.tensor(tiles.tile_shape(*shape)).prod() <= 1024
    # No op module keeps a tile rule of its own.
    for path in TRITON_OPS.glob("*.py"):
        if path.name != "tiles.py":
            defs = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
            assert not defs & {"tile_shape", "block_size", "budget"}, path.name


@triton.jit
def _probe(out_ptr, pid, R, inner, chunks, INT64: tl.constexpr, BR: tl.constexpr, BI: tl.constexpr):
    # pid arrives as int32, as tl.program_id does; the offsets are stored as int64.
    r, offs, mask = tile_index(pid, R, inner, chunks, INT64, BR, BI)
    lane = tl.arange(0, BR)[:, None] * BI + tl.arange(0, BI)[None, :]
    tl.store(out_ptr + lane, offs.to(tl.int64))


def _probe_offsets(device, pid, R, inner, chunks, int64, br, bi):
    """The bias_act kernels' element offsets for program `pid`, computed by the kernels' own
    index helper in a one-program launch (no test grid could reach such program ids)."""
    out = torch.zeros(br * bi, dtype=torch.int64, device=device)
    _probe[(1,)](out, pid, R, inner, chunks, INT64=int64, BR=br, BI=bi)
    return out.cpu()


@pytest.mark.parametrize(
    "R, inner, br, bi",
    [
        (1, 2**34 + 5, 1, 1024),  # no bias: 1.7e10 elements as one row (the reported bug)
        (2**34 + 5, 1, 1024, 1),  # bias along the last dim: one element per row
        (2**20, 2**14 + 3, 1, 1024),  # bias over channels of large planes
    ],
)
def test_tile_index_is_64_bit_past_2_31_elements(device, R, inner, br, bi):
    chunks = -(-inner // bi)
    last = -(-R // br) * chunks - 1  # the last program, whose offsets are largest
    for pid in (last, last // 2 + 1, 0):
        row0, i0 = (pid // chunks) * br, (pid % chunks) * bi
        want = torch.tensor([(row0 + r) * inner + i0 + i for r in range(br) for i in range(bi)])
        assert torch.equal(_probe_offsets(device, pid, R, inner, chunks, True, br, bi), want), pid


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_properties(0).total_memory < 24 * 2**30,
    reason="needs a CUDA GPU with 24 GiB",
)
def test_bias_act_without_bias_past_2_31_elements_on_gpu():
    n = 2**31 + 4096
    x = torch.zeros(n, dtype=torch.bfloat16, device="cuda")
    x[-4096:] = torch.linspace(-2, 2, 4096, device="cuda")
    out = torch.full_like(x, float("nan"))
    from kernels.bias_act import bias_act_triton

    bias_act_triton(x, None, KernelConfig.of("lrelu", None, None, None, 1), out=out)
    tail = out[-8192:].float()
    want = torch.nn.functional.leaky_relu(x[-8192:].float(), 0.2) * 2**0.5
    torch.testing.assert_close(tail, want, rtol=1e-2, atol=1e-2)
    del x, out
    torch.cuda.empty_cache()
