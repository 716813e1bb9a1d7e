"""The text-conditional StyleGAN2: shapes, text reaching G and D, per-prompt truncation, double
backward through the cross-attention (path length, R1), exports rebuilt from JSON."""

import pytest
import torch

from trainer import losses
from trainer.models import build_generator
from trainer.models.text2img import TextDiscriminator, TextGenerator
from trainer.recipes.text2img import generate
from trainer.text.tokenizer import WordTokenizer, count_words

TOKENIZER = WordTokenizer.from_counts(
    count_words(["a red 7 on a blue background", "a green 3 on black"]), context=8, max_words=50
).to_json()
SMALL = dict(
    img_resolution=16,
    img_channels=3,
    tokenizer=TOKENIZER,
    context=8,
    text_dim=16,
    text_layers=1,
    text_heads=2,
    channel_base=128,
    channel_max=16,
)


def nets():
    G = TextGenerator(z_dim=8, w_dim=16, attn_res=8, attn_heads=2, mapping_layers=1, **SMALL)
    D = TextDiscriminator(mapping_layers=1, mbstd_group=2, **SMALL)
    return G, D


def ids(*prompts):
    tok = WordTokenizer.from_json(TOKENIZER)
    return torch.tensor([tok.encode(p) for p in prompts])


def test_shapes_and_text_changes_the_output():
    G, D = nets()
    z = torch.randn(1, 8).repeat(2, 1)
    img = G(z, ids("a red 7 on a blue background", "a green 3 on black"), noise_mode="const")
    assert img.shape == (2, 3, 16, 16) and (img[0] - img[1]).abs().max() > 0  # same z, other caption
    assert D(img, ids("a red 7", "a green 3")).shape == (2, 1)
    assert G(z, None).shape == (2, 3, 16, 16) and D(img, None).shape == (2, 1)  # no text: the unknown word
    assert set(G.attend) == {"4", "8"}  # cross-attention up to attn_res


def test_truncation_pulls_towards_each_prompts_own_mean():
    G, _ = nets()
    tokens = ids("a red 7", "a red 7", "a green 3")
    img = G(torch.randn(3, 8), tokens, truncation_psi=0.0, noise_mode="const")
    assert torch.allclose(img[0], img[1], atol=1e-5)  # psi 0: the prompt's centre, whatever z
    assert (img[0] - img[2]).abs().max() > 1e-3  # another prompt, another centre


def test_path_length_and_r1_differentiate_twice_through_text_conditioning():
    G, D = nets()
    tokens = ids("a red 7", "a green 3")
    img, ws = generate(G, torch.randn(2, 8), tokens, style_mixing=0.5)
    (grads,) = torch.autograd.grad((img * torch.randn_like(img)).sum(), ws, create_graph=True)
    grads.square().sum().backward()
    assert G.attend["8"].q.weight.grad is not None and G.text.embed.weight.grad is not None
    r1 = losses.discriminator_r1(D, torch.randn(2, 3, 16, 16), tokens, gamma=1.0, interval=4)
    r1.total.backward()
    assert D.text.embed.weight.grad is not None


def test_export_rebuilds_from_json_kwargs_with_the_tokenizer():
    import json

    G, _ = nets()
    kwargs = json.loads(json.dumps(G.init_kwargs))  # what generator.json holds
    again = build_generator("text2img", kwargs)
    again.load_state_dict(G.state_dict())
    z = torch.randn(2, 8)
    assert torch.equal(
        again(z, ids("a red 7", "a red 7"), noise_mode="const"), G(z, ids("a red 7", "a red 7"), noise_mode="const")
    )
    assert json.loads(bytes(G.tokenizer_json.tolist()).decode()) == TOKENIZER  # the checkpoints' copy


def test_unknown_encoder_is_refused_by_name():
    with pytest.raises(ValueError, match="text.encoder='clip'"):
        TextGenerator(z_dim=8, w_dim=16, encoder="clip", **{k: v for k, v in SMALL.items()})


def test_torchscript_graph_takes_token_ids_and_carries_the_tokenizer(tmp_path):
    from trainer.export import export_generator, run_export

    G, _ = nets()
    export_generator(G.eval(), tmp_path / "export", metadata={"text_encoder": "builtin", "tokenizer": TOKENIZER})
    path = run_export(tmp_path / "export", "torchscript", truncation=0.7)
    extra = {"generator.json": ""}
    graph = torch.jit.load(str(path), _extra_files=extra)
    assert json_loads(extra["generator.json"])["graph_inputs"] == ["z", "tokens"]
    assert json_loads(extra["generator.json"])["tokenizer"] == TOKENIZER
    tokens, z = ids("a red 7", "a green 3", "a red 7"), torch.randn(3, 8)  # any batch size
    assert torch.allclose(graph(z, tokens), G(z, tokens, truncation_psi=0.7, noise_mode="const"), atol=1e-4)
    with pytest.raises(ValueError, match="TorchScript graphs only"):
        run_export(tmp_path / "export", "onnx")


def json_loads(text):
    import json

    return json.loads(text)
