"""Bad input around text: the config keys, captions vs. families (preflight), the caption decoder
and the stream's error policy for missing or empty captions."""

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from trainer.config import ConfigError, load_config
from trainer.text.captions import CaptionDecoder
from trainer.text.tokenizer import WordTokenizer


def cfg(urls, *overrides, config="configs/text2img_digits.yaml"):
    return load_config(config, [f"data.urls={urls}", "data.prepare=none", *overrides])


def test_unknown_text_encoder_names_the_key(colour_shards):
    with pytest.raises(ConfigError, match="text.encoder.*valid choices: builtin, hf:PATH"):
        cfg(colour_shards, "text.encoder=clip")
    with pytest.raises(ConfigError, match="data.num_classes.*captions, not class labels"):
        cfg(colour_shards, "data.num_classes=10", "model.conditional=true")
    with pytest.raises(ConfigError, match="text.attn_res"):
        cfg(colour_shards, "text.attn_res=64")


def test_captions_for_a_model_without_text_and_the_reverse(colour_shards, digit_shards):
    from launch.preflight import prepare_data

    with pytest.raises(ConfigError, match="model.family.*carry captions.*model.family=text2img"):
        prepare_data(
            load_config(
                "configs/digits.yaml",
                [f"data.urls={colour_shards}", "data.prepare=none", "data.num_classes=0", "data.channels=3"],
            )
        )
    with pytest.raises(ConfigError, match="text2img needs captioned shards"):
        prepare_data(cfg(digit_shards[1]))


def test_tokenizer_comes_from_the_manifest_or_a_file(colour_shards, tmp_path):
    import json

    from trainer.text.vocabulary import tokenizer_for

    tok = tokenizer_for(cfg(colour_shards))
    assert "seven" in tok["vocab"] and tok["context"] == 12
    path = tmp_path / "tok.json"
    path.write_text(json.dumps(WordTokenizer(["a", "b"], 4).to_json()))
    assert tokenizer_for(cfg(colour_shards, f"text.tokenizer={path}"))["vocab"] == ["a", "b"]
    from launch.preflight import check_text

    with pytest.raises(ConfigError, match="text.tokenizer.*cannot read"):  # before any rank starts
        check_text(cfg(colour_shards, f"text.tokenizer={tmp_path / 'missing.json'}"))
    with pytest.raises(ConfigError, match="text.encoder='hf:.*' is not a folder"):
        check_text(cfg(colour_shards, f"text.encoder=hf:{tmp_path / 'no-model'}"))


def png(rgb=(255, 0, 0)):
    out = io.BytesIO()
    Image.new("RGB", (32, 32), rgb).save(out, format="PNG")
    return out.getvalue()


def test_decoder_draws_one_of_several_captions_per_view():
    tok = WordTokenizer(["a", "red", "blue", "7"], 6)
    decode = CaptionDecoder(tok, resolution=32, channels=3)
    sample = {"__key__": "k", "__url__": "u", "png": png(), "txt": b"a red 7\na blue 7\n"}
    drawn = {tuple(decode(sample, np.random.default_rng(s))["tokens"]) for s in range(20)}
    assert drawn == {tuple(tok.encode("a red 7")), tuple(tok.encode("a blue 7"))}
    same = [decode(sample, np.random.default_rng(3))["tokens"].tolist() for _ in range(2)]
    assert same[0] == same[1]  # seeded by the stream: a resume draws the same caption
    with pytest.raises(ValueError, match="k in u has no caption"):
        decode({"__key__": "k", "__url__": "u", "png": png()}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="empty caption"):
        decode({"__key__": "k", "__url__": "u", "png": png(), "txt": b" \n"}, np.random.default_rng(0))


def shard_with_bad_captions(path):
    with tarfile.open(path, "w") as tar:
        for key, txt in (("000", b"a red 7"), ("001", None), ("002", b""), ("003", b"a blue 7")):
            for ext, payload in (("png", png()), ("txt", txt)):
                if payload is None:
                    continue
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def test_stream_skips_and_counts_missing_or_empty_captions_or_fails_naming_them(tmp_path):
    from trainer.data.stream import StreamSpec, make_loader

    shard = tmp_path / "shard-000000.tar"
    shard_with_bad_captions(shard)
    decoder = CaptionDecoder(WordTokenizer(["a", "red", "blue", "7"], 6), resolution=32, channels=3)
    spec = StreamSpec(
        urls=(str(shard),),
        seed=0,
        rank=0,
        world_size=1,
        batch_size=4,
        resolution=32,
        channels=3,
        labeled=False,
        xflip=False,
        shuffle_buffer=1,
        decoder=decoder,
    )
    batch = next(make_loader(spec, 0))
    assert batch.skipped == 2 and batch.extras["tokens"].shape == (4, 6)
    import dataclasses

    with pytest.raises(Exception, match="001"):
        next(make_loader(dataclasses.replace(spec, on_error="fail"), 0))
