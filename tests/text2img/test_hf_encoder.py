"""text.encoder=hf:PATH: a frozen Hugging Face CLIP text model from a local folder. Tested offline
with a tiny randomly initialised CLIPTextModel and a tokenizer whose files are written here."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    out = tmp_path_factory.mktemp("clip")
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789,")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    merges = ["r e", "re d</w>", "b l", "bl u", "blu e</w>"]
    for merge in merges:
        vocab["".join(merge.split())] = len(vocab)
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), model_max_length=16).save_pretrained(out)
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=16,
        pad_token_id=vocab["<|endoftext|>"],
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
    )
    torch.manual_seed(0)
    CLIPTextModel(config).save_pretrained(out)
    return out


def test_frozen_clip_conditions_g_and_d_and_stays_out_of_the_weights(tiny_clip):
    from trainer.models.text2img import TextDiscriminator, TextGenerator
    from trainer.text.encoders import build_tokenizer

    encoder = f"hf:{tiny_clip}"
    tok = build_tokenizer(encoder, None, 12)
    ids = torch.tensor([tok.encode("a red 7 on blue"), tok.encode("a blue 3")])
    assert ids.shape == (2, 12) and (ids[1] == -1).sum() > 0
    G = TextGenerator(
        z_dim=8,
        w_dim=16,
        img_resolution=16,
        img_channels=3,
        encoder=encoder,
        context=12,
        channel_base=128,
        channel_max=16,
        attn_res=8,
        mapping_layers=1,
    )
    D = TextDiscriminator(
        img_resolution=16,
        img_channels=3,
        encoder=encoder,
        context=12,
        channel_base=128,
        channel_max=16,
        mapping_layers=1,
        mbstd_group=2,
    )
    z = torch.randn(1, 8).repeat(2, 1)
    img = G(z, ids, noise_mode="const")
    assert (img[0] - img[1]).abs().max() > 0 and D(img, ids).shape == (2, 1)
    assert G.text.dim == 32 and not any(k.startswith("text.") for k in G.state_dict())  # frozen, not saved
    with pytest.warns(UserWarning, match="cut to the context length 4"):
        assert len(build_tokenizer(encoder, None, 4).encode("a red 7 on blue", warn=True)) == 4


def test_missing_hf_folder_is_named(tmp_path):
    from trainer.text.encoders import build_tokenizer

    with pytest.raises(ValueError, match="text.encoder='hf:.*nothere' is not a folder"):
        build_tokenizer(f"hf:{tmp_path / 'nothere'}", None, 8)


@pytest.mark.slow
def test_train_and_sample_with_a_frozen_clip(tiny_clip, train_one_rank, tmp_path):
    result = train_one_rank(
        tmp_path,
        "clip",
        f"text.encoder=hf:{tiny_clip}",
        "train.kimg=0.024",
        drop=("text.dim", "text.layers", "text.heads", "augment.kind"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    description = json.loads((tmp_path / "clip" / "export" / "generator.json").read_text())
    assert description["text_encoder"] == f"hf:{tiny_clip}" and "tokenizer" not in description
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch",
            "sample",
            tmp_path / "clip" / "export",
            "--prompt",
            "a red 7 on blue",
            "--seeds",
            "0-1",
            "--out",
            tmp_path / "out",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
