"""Model families without processes: shapes, conditioning, loss choices, exports, config errors."""

from pathlib import Path

import pytest
import torch

from trainer import losses
from trainer.config import ConfigError, load_config
from trainer.export import export_generator, load_generator
from trainer.models import FAMILIES, build_networks, generator_classes
from trainer.models.common import truncate_latent
from trainer.recipes import RECIPES, adversarial

ROOT = Path(__file__).resolve().parents[2]
# (config, tiny overrides) per family; the conditional variants are separate configs.
TINY = {
    "dcgan": ["model.channel_base=64", "model.channel_max=16", "model.z_dim=8"],
    "dcgan_conditional": ["model.channel_base=64", "model.channel_max=16", "model.z_dim=8"],
    "mlp": ["model.mlp_hidden=16", "model.mlp_layers=2", "model.z_dim=8"],
    "mlp_conditional": ["model.mlp_hidden=16", "model.mlp_layers=2", "model.z_dim=8"],
    "biggan": ["model.channel_base=128", "model.channel_max=16", "model.z_dim=8", "model.class_embed_dim=4"],
    "progan": ["model.channel_base=128", "model.channel_max=16", "model.z_dim=8"],
}


def tiny(name, *extra):
    return load_config(ROOT / f"configs/{name}.yaml", TINY[name] + list(extra))


def test_every_family_has_a_recipe_a_generator_and_a_config():
    assert set(FAMILIES) == set(RECIPES) == set(generator_classes())
    for family in FAMILIES:
        assert any(load_config(p).model.family == family for p in (ROOT / "configs").glob("*.yaml")), family


@pytest.mark.parametrize("name", sorted(TINY))
def test_shapes_and_conditioning(name):
    cfg = tiny(name)
    G, D = build_networks(cfg)
    c = torch.eye(10)[:4] if cfg.c_dim else None
    img = G(torch.randn(4, 8), c)
    assert img.shape == (4, 1, 32, 32)
    assert name == "progan" or img.abs().max() <= 1  # ProGAN's output layer is linear, as in the paper
    assert D(img, c).shape == (4, 1)
    if cfg.c_dim:
        # The label reaches both networks: G's image and D's score change with it.
        z = torch.randn(4, 8)
        other = torch.eye(10)[4:8]
        assert not torch.allclose(G(z, c), G(z, other))
        assert not torch.allclose(D(img, c), D(img, other))
    else:
        assert G.c_dim == 0 and D.head.embed is None


@pytest.mark.parametrize("name", sorted(TINY))
def test_export_rebuilds_the_same_generator_without_the_config(name, tmp_path):
    G, _ = build_networks(tiny(name))
    G.eval()
    export_generator(G, tmp_path, class_names=[str(i) for i in range(10)])
    G2, description = load_generator(tmp_path)
    assert description["family"] == G.family
    c = torch.eye(10)[:3] if G.c_dim else None
    z = torch.randn(3, 8)
    torch.testing.assert_close(G2(z, c), G(z, c))


def test_dcgan_discriminator_drops_batch_norm_for_wgan_gp():
    _, D = build_networks(tiny("dcgan"))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    _, D = build_networks(tiny("dcgan", "loss.kind=wgan_gp"))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())


def test_truncation_is_a_truncated_normal_map():
    z = torch.randn(2000, 8)
    assert torch.equal(truncate_latent(z, 1.0), z)
    t = truncate_latent(z, 0.5)
    assert t.abs().max() <= 0.5 + 1e-6
    # Monotone per entry (order preserved), so nearby seeds stay nearby.
    assert (t.flatten()[z.flatten().argsort()].diff() >= 0).all()
    assert torch.equal(truncate_latent(z, 0.0), torch.zeros_like(z))


def test_adversarial_losses_match_their_definitions():
    real, fake = torch.tensor([[2.0], [-0.5]]), torch.tensor([[0.5], [-3.0]])
    sp = torch.nn.functional.softplus
    torch.testing.assert_close(losses.d_adversarial("logistic", real, fake), sp(fake).mean() + sp(-real).mean())
    # hinge: relu(1 - real) = [0, 1.5] -> 0.75; relu(1 + fake) = [1.5, 0] -> 0.75
    torch.testing.assert_close(losses.d_adversarial("hinge", real, fake), torch.tensor(1.5))
    torch.testing.assert_close(losses.d_adversarial("wgan_gp", real, fake), torch.tensor(-1.25 - 0.75))
    torch.testing.assert_close(losses.g_adversarial("hinge", fake), torch.tensor(1.25))
    # lsgan: D pulls real to 1 ((1 + 2.25) / 2) and fake to 0 ((0.25 + 9) / 2); G pulls fake to 1
    torch.testing.assert_close(losses.d_adversarial("lsgan", real, fake), torch.tensor(0.5 * (1.625 + 4.625)))
    torch.testing.assert_close(losses.g_adversarial("lsgan", fake), torch.tensor(0.5 * (0.25 + 16) / 2))
    with pytest.raises(ValueError, match="logistic, hinge, wgan_gp, lsgan"):
        losses.g_adversarial("wasserstein", fake)


def test_gradient_penalty_of_a_linear_critic_is_known_in_closed_form():
    """D(x) = <w, x> has gradient w everywhere: the penalty is (|w| - 1)^2 at any point."""
    w = torch.full([1, 1, 2, 2], 1.5)  # |w| = 3

    class Linear(torch.nn.Module):
        def forward(self, x, c):
            return (x * w).sum(dim=[1, 2, 3])[:, None]

    penalty = losses.gradient_penalty(Linear(), torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2), None)
    torch.testing.assert_close(penalty, torch.tensor(4.0))


@pytest.mark.parametrize("kind", losses.LOSS_KINDS)
@pytest.mark.parametrize("name", ["dcgan_conditional", "mlp", "biggan", "progan"])
def test_every_loss_kind_backpropagates_through_each_family(name, kind):
    cfg = tiny(name, f"loss.kind={kind}")
    G, D = build_networks(cfg)
    c = torch.eye(10)[:4] if cfg.c_dim else None
    g = adversarial.generator_main(G, D, torch.randn(4, 8), c, kind=kind, ortho_weight=cfg.loss.ortho_weight)
    assert ("orthogonal" in g.terms) == (cfg.loss.ortho_weight > 0)
    g.total.backward()
    # ProGAN's toRGB layers of the levels below the last fade take no part: no gradient there.
    grads = [p.grad for p in G.parameters() if p.grad is not None or name != "progan"]
    assert len(grads) > 4 and all(g is not None and torch.isfinite(g).all() for g in grads)
    d = adversarial.discriminator_main(
        G, D, torch.rand(4, 1, 32, 32) * 2 - 1, c, torch.randn(4, 8), c, kind=kind, gp_weight=10.0
    )
    assert torch.isfinite(d.total) and ("gradient_penalty" in d.terms) == (kind == "wgan_gp")
    D.zero_grad()
    d.total.backward()
    assert all(torch.isfinite(p.grad).all() for p in D.parameters() if p.grad is not None)


def test_drift_term_adds_the_mean_square_real_score():
    class Constant(torch.nn.Module):  # scores every image 3, whatever it shows
        def forward(self, img, c):
            return img.flatten(1).sum(1, keepdim=True) * 0 + 3.0

    real, fake = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    plain = losses.discriminator_scores(Constant(), real, None, fake, None, kind="hinge")
    drifted = losses.discriminator_scores(Constant(), real, None, fake, None, kind="hinge", drift_weight=0.001)
    assert "drift" not in plain.terms and drifted.terms["drift"] == 9.0
    torch.testing.assert_close(drifted.total, plain.total + 0.009)


def test_stylegan2_accepts_every_loss_kind():
    cfg = load_config(
        ROOT / "configs/digits.yaml",
        [
            "model.channel_base=256",
            "model.channel_max=8",
            "model.z_dim=8",
            "model.w_dim=8",
            "model.mapping_layers=1",
            "loss.kind=wgan_gp",
        ],
    )
    G, D = build_networks(cfg)
    c = torch.eye(10)[:4]
    d = losses.discriminator_main(
        G,
        D,
        torch.rand(4, 1, 32, 32) * 2 - 1,
        c,
        torch.randn(4, 8),
        c,
        style_mixing=0.9,
        kind="wgan_gp",
        gp_weight=10.0,
    )
    d.total.backward()
    assert d.terms["gradient_penalty"] > 0 and torch.isfinite(d.total)


@pytest.mark.parametrize(
    "override, words",
    [
        (["loss.kind=least_squares"], ["loss.kind", "logistic", "hinge", "wgan_gp", "lsgan"]),
        (["loss.pl_weight=2"], ["loss.pl_weight", "stylegan2", "dcgan"]),
        (["loss.style_mixing=0.9"], ["loss.style_mixing", "stylegan2"]),
        (["loss.kind=wgan_gp", "loss.gp_weight=0"], ["loss.gp_weight"]),
        (["loss.drift_weight=-0.001"], ["loss.drift_weight", ">= 0"]),
        (
            ["model.family=vqgan"],
            ["model.family", "biggan", "cyclegan", "dcgan", "mlp", "pix2pix", "progan", "stylegan2"],
        ),
        (["model.mlp_hidden=0"], ["model.mlp_hidden"]),
        (["model.mlp_dropout=1.0"], ["model.mlp_dropout", "[0, 1)"]),
    ],
)
def test_bad_family_settings_name_the_key(override, words):
    with pytest.raises(ConfigError) as info:
        load_config(ROOT / "configs/dcgan.yaml", override)
    for word in words:
        assert word in str(info.value)


def test_orthogonal_penalty_vanishes_only_for_orthogonal_rows():
    layer = torch.nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.linalg.qr(torch.randn(4, 4))[0] * 3)  # orthogonal rows, any norm
    assert losses.orthogonal_penalty(layer) < 1e-8
    with torch.no_grad():
        layer.weight[1] = layer.weight[0]  # two equal rows of norm 3: off-diagonal 9 twice
    torch.testing.assert_close(losses.orthogonal_penalty(layer), torch.tensor(162.0))


def test_biggan_has_spectral_norm_attention_and_conditional_batch_norm():
    from trainer.models.biggan import ConditionalBatchNorm, SelfAttention

    G, D = build_networks(tiny("biggan"))
    for net in (G, D):
        assert any(isinstance(m, SelfAttention) for m in net.modules())
        assert any(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in net.modules())
    assert any(isinstance(m, ConditionalBatchNorm) for m in G.modules())
    # Truncation at sampling: a small psi pulls images of different seeds together.
    G.eval()
    z, c = torch.randn(16, 8) * 2, torch.eye(10)[torch.arange(16) % 10]
    spread = lambda psi: G(z, c, truncation_psi=psi).std(dim=0).mean()  # noqa: E731
    assert spread(0.05) < spread(1.0)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_generators_record_every_constructor_argument_once(family, tmp_path):
    """init_kwargs comes from the signature itself: every parameter, defaults filled in, and a
    generator rebuilt from it has the same parameter shapes."""
    import inspect

    config = next(p for p in sorted((ROOT / "configs").glob("*.yaml")) if load_config(p).model.family == family)
    overrides = list(TINY.get(config.stem, []))
    if family == "text2img":  # the builtin tokenizer is built from the shards' caption counts
        from trainer.data.colour_digits import write_colour_digit_shards

        write_colour_digit_shards(tmp_path / "shards", shards=2, renders=1)
        overrides.append(f"data.urls={tmp_path / 'shards'}")
    cfg = load_config(config, overrides)
    G, _ = build_networks(cfg)
    cls = generator_classes()[family]
    assert set(G.init_kwargs) == set(inspect.signature(cls.__init__).parameters) - {"self"}
    rebuilt = cls(**G.init_kwargs)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in G.state_dict().items()}


@pytest.mark.parametrize("n_critic", [1, 5])
def test_n_critic_trains_the_critic_n_times_per_generator_step(n_critic):
    """Through the public phase API: the recipe asks for G main on every n-th step only, D main on
    every step (one fresh real batch each)."""
    from trainer.phases import Counters, StepBatch, StepContext

    cfg = tiny("dcgan", "loss.kind=wgan_gp", f"loss.n_critic={n_critic}")
    G, D = build_networks(cfg)
    recipe = RECIPES["dcgan"](cfg, torch.device("cpu"))
    ran = []
    for step in range(10):
        ctx = StepContext(
            nets={"G": G, "D": D, "G_ema": G},
            engines={},
            batch=StepBatch(torch.zeros(4, 1, 32, 32), None),
            counters=Counters(step=step, images_seen=4 * step),
            batch_size=4,
            device=torch.device("cpu"),
            dtype=torch.float32,
            rank=0,
            world_size=1,
            z_dim=8,
            c_dim=0,
            run_phase=lambda name, network, compute, step=step: ran.append((step, name, network)),
            next_batch=lambda name: None,
        )
        recipe.train_phases(ctx)
    assert [s for s, name, net in ran if name == "G_main" and net == "G"] == list(range(0, 10, n_critic))
    assert [s for s, name, net in ran if name == "D_main" and net == "D"] == list(range(10))


def test_n_critic_is_refused_where_no_recipe_applies_it():
    with pytest.raises(ConfigError, match="loss.n_critic"):
        load_config(ROOT / "configs/digits.yaml", ["loss.n_critic=5"])
    with pytest.raises(ConfigError, match="loss.n_critic"):
        tiny("dcgan", "loss.n_critic=0")


def test_mlp_discriminator_dropout_is_active_in_training_only():
    from trainer.models.mlp import MLPDiscriminator

    torch.manual_seed(0)
    D = MLPDiscriminator(c_dim=0, img_resolution=8, img_channels=1, hidden=16, layers=2, dropout=0.5)
    x = torch.randn(4, 1, 8, 8)
    D.train()
    assert not torch.equal(D(x, None), D(x, None))  # a fresh dropout mask per call
    D.eval()
    torch.testing.assert_close(D(x, None), D(x, None))


def test_mlp_minibatch_std_lets_d_see_a_batch_without_variety():
    from trainer.models.mlp import MLPDiscriminator

    torch.manual_seed(0)
    img = torch.randn(1, 1, 8, 8)
    varied = torch.cat([img, torch.randn(3, 1, 8, 8)])
    same = img.repeat(4, 1, 1, 1)  # a collapsed G: one image for every z
    plain = MLPDiscriminator(c_dim=0, img_resolution=8, img_channels=1, hidden=16, layers=2)
    torch.testing.assert_close(plain(varied, None)[0], plain(same, None)[0])  # judged alone
    D = MLPDiscriminator(c_dim=0, img_resolution=8, img_channels=1, hidden=16, layers=2, mbstd_group=4)
    assert not torch.allclose(D(varied, None)[0], D(same, None)[0])  # judged with its group
    cfg = load_config(ROOT / "configs/mlp.yaml", ["model.mlp_minibatch_std=true", "model.mbstd_group=2"])
    _, built = build_networks(cfg)
    assert any(type(m).__name__ == "_FeatureMinibatchStd" and m.layer.group_size == 2 for m in built.modules())


def test_mlp_generator_batch_norm_uses_batch_statistics_only_in_training():
    cfg = load_config(ROOT / "configs/mlp.yaml", ["model.mlp_batch_norm=true", "model.mlp_hidden=16", "model.z_dim=4"])
    G, _ = build_networks(cfg)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in G.modules()) == cfg.model.mlp_layers
    torch.manual_seed(0)
    z, others = torch.randn(1, 4), torch.randn(3, 4)
    G.train()
    assert not torch.allclose(G(torch.cat([z, others]), None)[0], G(torch.cat([z, -others]), None)[0])
    G.eval()  # running statistics: an image depends on its own z alone, as an exported sampler needs
    torch.testing.assert_close(G(torch.cat([z, others]), None)[0], G(torch.cat([z, -others]), None)[0])
