"""StyleGAN2 networks: shapes, conditioning, the full-size recipe, and pickle-free exports."""

import json
from pathlib import Path

import pytest
import torch

from trainer.config import load_config
from trainer.export import ExportError, export_generator, load_generator
from trainer.models import build_networks

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.channel_base=256", "model.channel_max=16", "model.z_dim=16", "model.w_dim=16", "model.mapping_layers=1"]


def tiny(*extra):
    return load_config(ROOT / "configs/digits.yaml", TINY + list(extra))


def test_generator_and_discriminator_shapes_conditional():
    cfg = tiny()
    G, D = build_networks(cfg)
    z, c = torch.randn(4, 16), torch.eye(10)[:4]
    img = G(z, c)
    assert img.shape == (4, 1, 32, 32) and torch.isfinite(img).all()
    logits = D(img, c)
    assert logits.shape == (4, 1)
    # The projection head makes the score depend on the label.
    assert not torch.allclose(D(img, torch.eye(10)[4:8]), logits)
    assert G.num_ws == 2 * 4  # 4 blocks (4..32): 1 + 2 + 2 + 2 convs, +1 toRGB


def test_unconditional_models_ignore_labels():
    cfg = tiny("data.num_classes=0")
    G, D = build_networks(cfg)
    assert G.c_dim == 0 and D.mapping is None
    assert D(G(torch.randn(2, 16), None), None).shape == (2, 1)


def test_truncation_pulls_towards_the_average():
    G, _ = build_networks(tiny())
    G.mapping.w_avg.normal_()
    z, c = torch.randn(3, 16), torch.eye(10)[:3]
    w = G.mapping(z, c)
    w0 = G.mapping(z, c, truncation_psi=0.0)
    assert torch.allclose(w0, G.mapping.w_avg.expand_as(w0))
    assert not torch.allclose(w, w0)


def test_ffhq1024_builds_and_runs_forward_and_backward_at_batch_1():
    """The real recipe's topology (1024x1024, 9 blocks, 18 ws); channels reduced to fit CI."""
    cfg = load_config(ROOT / "configs/ffhq1024.yaml", ["model.channel_base=2048", "model.channel_max=8"])
    G, D = build_networks(cfg)
    assert G.num_ws == 18
    img = G(torch.randn(1, 512), None)
    assert img.shape == (1, 3, 1024, 1024)
    D(img, None).sum().backward()
    assert all(p.grad is not None for p in G.synthesis.parameters() if p.requires_grad and p.ndim > 1)


def test_ffhq1024_full_size_matches_the_published_parameter_count():
    """Config F at 1024: G about 30.0M parameters, D about 29.0M (StyleGAN2 paper, table 1 setup)."""
    cfg = load_config(ROOT / "configs/ffhq1024.yaml")
    with torch.device("meta"):
        G, D = build_networks(cfg)
    g = sum(p.numel() for p in G.parameters())
    d = sum(p.numel() for p in D.parameters())
    assert 29.5e6 < g < 30.5e6, g
    assert 28.5e6 < d < 29.5e6, d


def test_export_round_trips_without_the_training_config(tmp_path):
    G, _ = build_networks(tiny())
    G.eval()
    export_generator(G, tmp_path, class_names=[str(i) for i in range(10)])
    G2, description = load_generator(tmp_path)
    assert description["family"] == "stylegan2" and description["c_dim"] == 10
    z, c = torch.randn(2, 16), torch.eye(10)[:2]
    assert torch.allclose(G(z, c, noise_mode="const"), G2(z, c, noise_mode="const"), atol=1e-6)
    # Loading via the weights file or the JSON works too.
    load_generator(tmp_path / "generator.safetensors")
    load_generator(tmp_path / "generator.json")


def test_export_whose_json_does_not_match_its_tensors_is_refused(tmp_path):
    G, _ = build_networks(tiny())
    export_generator(G, tmp_path)
    meta = json.loads((tmp_path / "generator.json").read_text())
    meta["init_kwargs"]["channel_max"] = 32
    (tmp_path / "generator.json").write_text(json.dumps(meta))
    with pytest.raises(ExportError, match="does not match"):
        load_generator(tmp_path)


def test_missing_export_is_a_clear_error(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        load_generator(tmp_path)
