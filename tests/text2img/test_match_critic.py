"""The separate caption-matching critic (`text.match_critic_weight`, trainer/text/match_critic.py):
its negatives (one word swapped, another number preferred), its config checks, that it exists only
when on, and one training step through the loop's own phase runner: the critic's loss is the caption
probe's on the real batch, it is updated in D's phase and never in G's; and G's two objectives
(`text.match_critic_objective`): the relative one pays only for the critic preferring the fake's own
caption over the swap, and logs `G/match_critic_acc`. The 2-rank exact-resume test
(test_train_text2img.py) trains with it on."""

import copy
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from trainer.config import ConfigError, load_config
from trainer.config.schema import TextConfig
from trainer.data.colour_digits import captions
from trainer.models import build_networks
from trainer.phases import Counters, StepBatch, StepContext
from trainer.text.match_critic import generator_loss, relative_generator_loss, shift_images, translation_offsets
from trainer.text.negatives import NUMBER_WORDS, number_values, preferred_swap_captions
from trainer.text.tokenizer import PAD, WordTokenizer, count_words

from .conftest import TINY

CAPTIONS = [
    "a red seven on a blue background",
    "a red 3 on a blue background",
    "a green seven on a red background",
    "a red 7 on a blue background",  # its only number partners name 7 (synonym) or 3
    "the digit 4, drawn in cyan on black",
    "the digit four, drawn in red on white",  # its partner names the same number: no number swap
    "seven in red ink over blue",  # no caption of its template: the rolled caption
]


def _tokens():
    tok = WordTokenizer.from_counts(count_words(CAPTIONS), context=10, max_words=100)
    return torch.tensor([tok.encode(c) for c in CAPTIONS]), number_values(tok.index, tok.num_tokens)


def test_negatives_swap_one_word_and_prefer_another_number():
    tokens, values = _tokens()
    number = torch.where(tokens == PAD, -1, values[tokens.clamp(min=0)])
    assert sorted(set(number[number >= 0].tolist())) == [3, 4, 7] and len(NUMBER_WORDS) == 20
    for step in range(6):
        wrong = preferred_swap_captions(tokens, step, values)
        for i in range(6):
            changed = (wrong[i] != tokens[i]).nonzero().flatten().tolist()
            assert len(changed) == 1, (step, i, changed)
            (p,) = changed
            # The new word is one some other caption of the same length has in that slot.
            assert any(int(tokens[j, p]) == int(wrong[i, p]) for j in range(6) if j != i)
            new = int(values[wrong[i, p]])
            if i in (0, 1, 2, 3):  # the batch offers these another number: always the number slot
                assert number[i, p] >= 0 and new >= 0 and new != number[i, p], (step, i)
            if i == 3:
                assert new == 3  # "7" -> "three"/"3", never the synonym "seven"
        assert torch.equal(wrong[6], tokens[5])  # rolled
    # Deterministic in the step; and without a number table any one-word swap is allowed.
    assert torch.equal(preferred_swap_captions(tokens, 3, values), preferred_swap_captions(tokens, 3, values))
    slots = {int((preferred_swap_captions(tokens, s)[0] != tokens[0]).nonzero()) for s in range(12)}
    assert len(slots) > 1


def test_bad_values_name_the_key(colour_shards):
    base = ["configs/text2img_digits.yaml"]
    off = ["text.match_critic_weight=0", "text.match_critic_augment=0"]
    for value in ("-1", "nan"):
        with pytest.raises(ConfigError, match="text.match_critic_weight.*must be >= 0"):
            load_config(*base, [f"data.urls={colour_shards}", f"text.match_critic_weight={value}"])
    for key in ("match_critic_channel_base", "match_critic_channel_max"):
        for value in ("0", "-4"):
            with pytest.raises(ConfigError, match=f"text.{key}.*must be >= 1"):
                load_config(*base, [f"data.urls={colour_shards}", f"text.{key}={value}"])
    with pytest.raises(ConfigError, match="text.match_critic_augment.*must be >= 0"):
        load_config(*base, [f"data.urls={colour_shards}", "text.match_critic_weight=1", "text.match_critic_augment=-1"])
    with pytest.raises(ConfigError, match="text.match_critic_augment.*text.match_critic_weight=0"):
        load_config(*base, [f"data.urls={colour_shards}", "text.match_critic_weight=0", "text.match_critic_augment=2"])
    for value in ("margin", "Relative", "hinge"):
        with pytest.raises(ConfigError, match="text.match_critic_objective.*valid choices: absolute, relative"):
            load_config(*base, [f"data.urls={colour_shards}", f"text.match_critic_objective={value}"])
    with pytest.raises(ConfigError, match="text.match_critic_objective.*text.match_critic_weight=0"):
        load_config(*base, [f"data.urls={colour_shards}", *off, "text.match_critic_objective=relative"])
    relative = load_config(*base, [f"data.urls={colour_shards}", "text.match_critic_objective=relative"]).text
    assert relative.match_critic_objective == "relative"
    defaults = TextConfig()  # off unless a config turns it on
    assert (defaults.match_critic_weight, defaults.match_critic_augment) == (0.0, 0)
    assert defaults.match_critic_objective == "absolute"  # today's G loss unless a config asks
    t = load_config(*base, [f"data.urls={colour_shards}"]).text  # the embedded default turns it on
    assert (t.match_critic_weight, t.match_critic_channel_base, t.match_critic_channel_max) == (1.0, 512, 32)
    assert (t.match_critic_augment, t.match_critic_objective) == (2, "absolute")


class _StandIn(torch.nn.Module):
    """A critic reading captions exactly: score(x, t) = mean(x) * (gain if t is the caption `right`
    the image was drawn for, else -gain) + mean(x) * blind (a part that ignores the caption)."""

    def __init__(self, right: torch.Tensor, gain: float, blind: float):
        super().__init__()
        self.right, self.gain, self.blind = right, gain, blind

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        sign = (tokens == self.right).all(dim=1).float() * 2 - 1
        return x.mean(dim=(1, 2, 3)) * (self.gain * sign + self.blind)


def test_relative_objective_pays_only_for_preferring_the_own_caption():
    tokens, values = _tokens()
    wrong = preferred_swap_captions(tokens, 0, values)
    fake = torch.ones(len(tokens), 3, 4, 4)
    # Prefers the fake's own caption by 6 (+3 vs -3): low loss, every fake counted as read.
    loss, acc = relative_generator_loss(_StandIn(tokens, 3.0, 0.0), fake, tokens, wrong)
    assert loss.item() == pytest.approx(F.softplus(torch.tensor(-6.0)).item()) and loss.item() < 0.01
    assert acc.item() == 1.0 and not acc.requires_grad
    # Prefers the swapped caption by 6: high loss, none read.
    loss, acc = relative_generator_loss(_StandIn(tokens, -3.0, 0.0), fake, tokens, wrong)
    assert loss.item() == pytest.approx(6.0, abs=0.01) and acc.item() == 0.0
    # A critic scoring every caption alike (+5): the absolute loss is already low, the relative one is
    # log 2 with no gradient at all (raising the score for every caption earns nothing); ties count against.
    blind = _StandIn(tokens, 0.0, 5.0)
    assert generator_loss(blind, fake, tokens).item() < 0.01
    x = fake.clone().requires_grad_(True)
    loss, acc = relative_generator_loss(blind, x, tokens, wrong)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(2)) and acc.item() == 0.0 and x.grad.abs().max() == 0
    # A reading critic gives G a gradient towards its own caption: brighter fakes here (the margin grows with mean(x)).
    x = fake.clone().requires_grad_(True)
    relative_generator_loss(_StandIn(tokens, 1.0, 2.0), x, tokens, wrong)[0].backward()
    assert (x.grad < 0).all()


def test_critic_translation_shifts_each_sample_deterministically():
    n, s = 16, 2
    x = torch.zeros(n, 3, 12, 12)
    x[:, :, 5, 7] = torch.arange(1, 4, dtype=torch.float32)[None, :]  # one marked pixel, a value per channel
    key = dict(seed=3, step=41, rank=1, stream="D")
    y = shift_images(x, s, **key)
    assert y.shape == x.shape and torch.equal(y, shift_images(x, s, **key))  # shape kept; same seed, same images
    dx, dy = translation_offsets(n, s, device=x.device, **key)
    assert dx.abs().max() <= s and dy.abs().max() <= s
    for i in range(n):  # a real shift: the marked pixel moved by the sample's own offset, nothing else lit
        assert torch.equal(y[i], torch.roll(x[i], (int(dy[i]), int(dx[i])), dims=(1, 2)))
    offsets = set(zip(dx.tolist(), dy.tolist()))
    assert len(offsets) > 4  # samples differ (25 possible offsets for 16 samples)
    assert (dx != 0).any() and (dy != 0).any()
    # Another step, rank or stream draws other offsets; shift 0 is the identity.
    for other in (dict(step=42), dict(rank=0), dict(stream="G"), dict(seed=4)):
        assert not torch.equal(shift_images(x, s, **{**key, **other}), y), other
    assert shift_images(x, 0, **key) is x
    # Differentiable: G's gradient flows back through the shift to the pixel that moved (its own place).
    x.requires_grad_(True)
    (shift_images(x, s, **key) * y).sum().backward()
    assert x.grad is not None and torch.equal(x.grad, x.detach())


def _config(colour_shards, *extra):
    overrides = [o for o in TINY if not o.startswith("launch.")]
    return load_config("configs/text2img_digits.yaml", [*overrides, f"data.urls={colour_shards}", *extra])


def test_critic_is_built_only_when_on(colour_shards):
    torch.manual_seed(0)
    _, D_off = build_networks(_config(colour_shards, "text.match_critic_weight=0", "text.match_critic_augment=0"))
    torch.manual_seed(0)
    _, D_on = build_networks(_config(colour_shards, "text.match_critic_weight=0.5", "text.match_critic_channel_max=8"))
    assert D_off.match_critic is None and not any(k.startswith("match_critic.") for k in D_off.state_dict())
    critic = D_on.match_critic
    assert critic is not None and critic.match_critic is None
    # The rest of D is unchanged (same keys, same initial weights): old checkpoints load as before.
    rest = {k: v for k, v in D_on.state_dict().items() if not k.startswith("match_critic.")}
    off = D_off.state_dict()
    assert rest.keys() == off.keys() and all(torch.equal(rest[k], v) for k, v in off.items())
    assert max(p.shape[0] for n, p in critic.net.named_parameters() if "conv" in n and p.ndim == 4) <= 8
    assert critic.text is not D_on.text  # its own text encoder


class _Engine:
    """The part of a DeepSpeed engine the loop's phase runner uses, on torch's Adam."""

    def __init__(self, module):
        self.module = module
        self.optimizer = torch.optim.Adam(module.parameters(), lr=0.01, betas=(0.0, 0.99))

    def backward(self, loss):
        loss.backward()

    def step(self):
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


@pytest.mark.parametrize("objective, shift", [("absolute", 0), ("relative", 1)])
def test_one_step_trains_the_critic_on_real_images_in_d_phase_only(colour_shards, objective, shift):
    from trainer.loop import Trainer
    from trainer.recipes.text2img import Text2ImgRecipe

    cfg = _config(
        colour_shards,
        "text.match_critic_weight=2",
        "text.match_critic_channel_max=8",
        f"text.match_critic_augment={shift}",
        f"text.match_critic_objective={objective}",
    )
    torch.manual_seed(0)
    G, D = build_networks(cfg)
    recipe = Text2ImgRecipe(cfg, device=torch.device("cpu"))
    # Two captions of each template (numeral and word form), digits 0..7: each has another number to swap in.
    texts = [captions(i, i, (i + 3) % 8)[2 * (i // 2) + i % 2] for i in range(8)]
    tokens = torch.tensor([recipe.tokenizer.encode(t) for t in texts])
    real = torch.rand(8, 3, 16, 16) * 2 - 1
    loop = SimpleNamespace(  # what Trainer._run_phase reads: it freezes the other network, as in training
        G_engine=_Engine(G),
        D_engine=_Engine(D),
        progress=SimpleNamespace(step=0),
        cfg=cfg,
        metrics=None,
        _grad_norms={},
        _sums={},
        _counts={},
    )
    critic = D.match_critic
    seen = {}
    calls = []  # (image, caption) of every critic call, G_main's first (it runs before D_main)
    critic.register_forward_hook(lambda module, args, out: calls.append((args[0], args[1], out.detach())))

    def run_phase(name, network, compute):
        before = copy.deepcopy(critic)
        captured = {}

        def watched():
            result = compute()
            captured["terms"] = result.terms
            return result

        def d_backward(loss):
            loss.backward()
            captured["grads"] = [p.grad for p in critic.parameters()]

        loop.D_engine.backward = d_backward
        Trainer._run_phase(loop, name, network, watched)
        moved = any(not torch.equal(a, b) for a, b in zip(before.parameters(), critic.parameters()))
        seen[name] = (before, moved, captured)

    G_engine_backward = loop.G_engine.backward

    def g_backward(loss):
        G_engine_backward(loss)
        seen.setdefault("G_grads", []).extend(p.grad for p in critic.parameters())

    loop.G_engine.backward = g_backward
    ctx = StepContext(
        nets={"G": G, "D": D, "G_ema": copy.deepcopy(G)},
        engines={"G": loop.G_engine, "D": loop.D_engine},
        batch=StepBatch(real, None, {"tokens": tokens}),
        counters=Counters(step=0, images_seen=0),
        batch_size=8,
        device=torch.device("cpu"),
        dtype=torch.float32,
        rank=0,
        world_size=1,
        z_dim=G.z_dim,
        c_dim=0,
        run_phase=run_phase,
        next_batch=None,
    )
    recipe.train_phases(ctx)

    # G's phases: the critic takes no gradient and does not move; G does learn from it.
    assert all(g is None for g in seen["G_grads"])
    assert not seen["G_main"][1] and not seen["G_reg"][1] and loop._sums["G/match_critic"] > 0
    g_terms = seen["G_main"][2]["terms"]
    wrong = preferred_swap_captions(tokens, 0, recipe._number_values)  # D's swap of this step
    if objective == "absolute":
        assert "G/match_critic_acc" not in loop._sums and len(calls) == 1 + 2  # G_main once, D_main twice
        ((_, caption, score),) = calls[:1]
        assert torch.equal(caption, tokens)
        assert g_terms["match_critic"].item() == pytest.approx(F.softplus(-score).mean().item(), rel=1e-5)
    else:
        # One translated view of the fakes, scored for their captions and for D's swap of this step.
        (view, caption, right_score), (view_again, swapped, wrong_score) = calls[:2]
        assert len(calls) == 2 + 2 and view_again is view
        assert torch.equal(caption, tokens) and torch.equal(swapped, wrong)
        margin = F.softplus(wrong_score - right_score).mean()
        assert g_terms["match_critic"].item() == pytest.approx(margin.item(), rel=1e-5)
        share = (right_score > wrong_score).float().mean().item()
        assert g_terms["match_critic_acc"].item() == share and loop._sums["G/match_critic_acc"].item() == share
    # D's main phase: the critic's loss is the probe's, on the real batch and the swapped captions.
    before, moved, captured = seen["D_main"]
    assert moved and all(g is not None and g.abs().sum() > 0 for g in captured["grads"])
    number = recipe._number_values[tokens.clamp(min=0)]
    changed = wrong != tokens
    assert (changed.sum(dim=1) == 1).all() and (number[changed] >= 0).all()  # the number word, and only it
    view = shift_images(real, shift, seed=cfg.run.seed, step=0, rank=0, stream="D")  # `real` itself at 0
    with torch.no_grad():
        right_score, wrong_score = before(view, tokens), before(view, wrong)
        probe = F.softplus(-right_score).mean() + F.softplus(wrong_score).mean()
    assert captured["terms"]["match_critic"].item() == pytest.approx(probe.item(), rel=1e-5)
    assert captured["terms"]["match_critic_acc"].item() == (right_score > wrong_score).float().mean().item()
    # R1 (step 0 is a D_reg step of the tiny config) keeps the critic in the graph with zero gradient.
    assert all(g is None or g.abs().sum() == 0 for g in seen["D_reg"][2]["grads"])
