"""The public ops as torch.library custom ops: torch.compile traces a generator through them
without graph breaks, and the R1 double backward skips the work whose result is known."""

import sys
from pathlib import Path

import pytest
import torch

import kernels
from kernels.bias_act import bias_act, bias_act_op, bias_act_ref
from kernels.modulated_conv2d import epilogue_op
from kernels.upfirdn2d import upfirdn2d_op

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.channel_base=128", "model.channel_max=8", "model.z_dim=8", "model.w_dim=8", "model.mapping_layers=1"]
OPS = {"hiresgan.upfirdn2d.default", "hiresgan.bias_act.default", "hiresgan.modconv_epilogue.default"}


def test_generator_step_compiles_in_one_graph_through_the_custom_ops():
    # The reference impl dispatched through the custom ops (what torch.compile gets on CPU), so
    # the graph is the one a GPU compile gets, with impl="triton" inside the same nodes.
    from trainer.config import load_config
    from trainer.models import build_networks

    G, _ = build_networks(load_config(ROOT / "configs/digits.yaml", TINY))
    G = G.double()
    z, c = torch.randn(2, 8, dtype=torch.float64), torch.eye(10, dtype=torch.float64)[:2]
    weight = torch.randn(2, 1, 32, 32, dtype=torch.float64)
    params = [p for p in G.parameters() if p.requires_grad]

    def step(z, c):
        img = G(z, c, noise_mode="const")  # no random draw: eager and compiled see the same inputs
        return (img * weight).sum()

    explained = torch._dynamo.explain(step)(z, c)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
    assert OPS <= {str(op) for op in explained.ops_per_graph[0]}
    torch._dynamo.reset()
    # aot_eager: AOTAutograd traces the backward through the ops' autograd formulas and fake
    # implementations, without inductor's C++ build (~100 s on a 2-core machine).
    loss = torch.compile(step, fullgraph=True, backend="aot_eager")(z, c)
    got = [loss, *torch.autograd.grad(loss, params)]
    loss = step(z, c)  # eager: the plain reference
    want = [loss, *torch.autograd.grad(loss, params)]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_ops_pass_torch_library_opcheck():
    # Schema, fake (shape) implementation and autograd registration agree with the real op.
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    f = kernels.setup_filter([1, 3, 3, 1]).double()
    tests = ("test_schema", "test_autograd_registration", "test_faketensor")
    torch.library.opcheck(bias_act_op, (x, b, 1, "swish", 0.0, 1.3, 0.9, "ref"), test_utils=tests)
    torch.library.opcheck(upfirdn2d_op, (x, f, [2, 2], [1, 1], [2, 1, 2, 1], False, 4.0, "ref"), test_utils=tests)
    s, noise = torch.rand(2, 3, dtype=torch.float64), torch.randn(2, 1, 5, 6, dtype=torch.float64)
    torch.library.opcheck(epilogue_op, (x, s, noise, b, "lrelu", 0.2, 1.4, 1.0, "ref"), test_utils=tests)


@pytest.mark.parametrize("act, launches", [("lrelu", 0), ("linear", 0), ("softplus", 1)])
def test_r1_double_backward_skips_zero_terms_and_unwanted_bias_sums(device, monkeypatch, act, launches):
    mod = sys.modules["kernels.bias_act"]
    grad2_calls, bias_sums = [], []
    real_grad2, real_sum = mod.bias_act_grad2_op, mod._sum_to_bias
    monkeypatch.setattr(mod, "bias_act_grad2_op", lambda *a: grad2_calls.append(1) or real_grad2(*a))
    monkeypatch.setattr(mod, "_sum_to_bias", lambda *a: bias_sums.append(1) or real_sum(*a))
    x0 = torch.randn(2, 3, 5, dtype=torch.float64, device=device)
    b0 = torch.randn(3, dtype=torch.float64, device=device)
    results = []
    for impl in ("triton", "ref"):
        x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
        y = bias_act(x, b, act=act, gain=1.3, impl=impl)
        (gx,) = torch.autograd.grad((y.square() * y.detach().cos()).sum(), x, create_graph=True)  # R1: d/dx only
        if impl == "triton":
            assert bias_sums == []  # b requires grad, but this pass does not ask for its gradient
        results.append(torch.autograd.grad(gx.square().sum(), [x, b]))
    assert len(grad2_calls) == launches
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # The ordinary backward still reduces the bias gradient when it is asked for.
    x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
    gb = torch.autograd.grad(bias_act(x, b, act=act, impl="triton").sum(), b)[0]
    torch.testing.assert_close(gb, torch.autograd.grad(bias_act_ref(x, b, act=act).sum(), b)[0])
