"""The networks reach the Triton kernels through impl="auto" and give the reference's results.

On CPU "auto" means the reference, so the test makes "auto" mean Triton (what it means for CUDA
tensors) in the three op modules and compares a tiny G and D, forward and backward, with the
same run on the reference. Runs under the interpreter on CPU and compiled on a GPU."""

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.channel_base=128", "model.channel_max=8", "model.z_dim=8", "model.w_dim=8", "model.mapping_layers=1"]
OP_MODULES = ["kernels.upfirdn2d", "kernels.bias_act", "kernels.modulated_conv2d"]


def _run(G, D, z, c):
    torch.manual_seed(1)  # the same noise inputs on both runs
    img = G(z, c)
    score = D(img, c).sum()
    params = [p for p in list(G.parameters()) + list(D.parameters()) if p.requires_grad]
    return [img, score, *torch.autograd.grad(score, params, allow_unused=True)]


def test_generator_and_discriminator_match_reference_on_triton(monkeypatch, device):
    from trainer.config import load_config
    from trainer.models import build_networks

    torch.manual_seed(0)
    G, D = build_networks(load_config(ROOT / "configs/digits.yaml", TINY))
    G, D = G.to(device).double(), D.to(device).double()
    z, c = torch.randn(2, 8, dtype=torch.float64, device=device), torch.eye(10, dtype=torch.float64, device=device)[:2]
    calls = []

    def dispatch(triton: bool):
        def use_triton(impl, *tensors, op=None):
            calls.append(impl)
            return triton and impl != "ref"

        for name in OP_MODULES:
            monkeypatch.setattr(sys.modules[name], "use_triton", use_triton)

    dispatch(triton=False)
    want = _run(G, D, z, c)
    dispatch(triton=True)  # what "auto" means for CUDA tensors
    calls.clear()
    got = _run(G, D, z, c)
    assert calls and set(calls) == {"auto"}  # the models pass no impl: they rely on "auto"
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)
