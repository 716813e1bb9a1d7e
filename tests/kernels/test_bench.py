"""The kernel benchmark's plumbing, run at --quick shapes on CPU (reference + compiled reference)."""

import json

import pytest
import torch

from kernels import bench


def test_quick_bench_writes_a_table_and_json(tmp_path, capsys):
    out = tmp_path / "sub" / "kernels.json"
    # aot_eager: torch.compile traces and runs AOT autograd without generating C++ (inductor's
    # first compile costs minutes on 2 cores); the GPU benchmark uses inductor.
    assert (
        bench.main(
            [
                "--quick",
                "--device",
                "cpu",
                "--dtypes",
                "fp32",
                "--compile-backend",
                "aot_eager",
                "--warmup",
                "0",
                "--iters",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["quick"] and report["copy_GBps"] > 0 and report["matmul_TFLOPs"]["fp32"] > 0
    assert "--quick" in report["command"] and report["compile_backend"] == "aot_eager"
    seen = {(r["op"], r["direction"], r["impl"]) for r in report["results"]}
    assert seen == {
        (op, d, impl)
        for op in ("upfirdn2d", "bias_act", "modulated_conv2d")
        for d in ("fwd", "fwd+bwd")
        for impl in ("ref", "compiled")
    }
    for r in report["results"]:
        assert r["ms"] > 0 and r["GBps"] > 0 and 0 < r["frac_copy"]
        assert (r["TFLOPs"] is not None) == (r["op"] == "modulated_conv2d")
    table = capsys.readouterr().out
    assert "x ref" in table and "modulated_conv2d" in table and "wrote" in table


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--dtypes", "fp16"], "--dtypes"),
        (["--ops", "conv"], "--ops"),
        (["--iters", "0"], "--iters"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_bad_flags_are_named(argv, flag, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert flag in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_quick_bench_on_gpu_times_triton(tmp_path):
    out = tmp_path / "kernels.json"
    assert (
        bench.main(["--quick", "--device", "cuda", "--no-compile", "--warmup", "1", "--iters", "2", "--out", str(out)])
        == 0
    )
    rows = json.loads(out.read_text())["results"]
    assert {r["impl"] for r in rows} == {"triton", "ref"}
    assert all(r["speedup_vs_ref"] > 0 for r in rows if r["impl"] == "triton")
