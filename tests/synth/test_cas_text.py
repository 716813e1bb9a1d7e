"""CAS of a text-to-image export, prompts as classes: real colour digits labelled by prompt position
(trainer/data/colour_digit_prompts.py) and `hiresgan eval --metrics cas --classes PROMPTS`."""

import json
import tarfile

import numpy as np
import pytest
import torch

from trainer.data import colour_digits as cd
from trainer.data.colour_digit_prompts import PromptShardError, parse_prompt, write_prompt_sets
from trainer.evaluation import cas as cas_module

PROMPTS = ["a white three on a black background", "a white seven on a black background"]
VOCAB = ("a", "white", "three", "seven", "on", "black", "background")


@pytest.fixture(scope="module")
def prompt_sets(tmp_path_factory):
    out = tmp_path_factory.mktemp("prompts") / "real"
    return out, write_prompt_sets(out, PROMPTS)


@pytest.fixture
def text_export(tmp_path):
    """As `hiresgan export CHECKPOINT` writes it: the tokenizer only among G's own arguments."""
    from synthkit import write_text_export

    export = write_text_export(tmp_path / "text", vocab=VOCAB, context=8)
    description = json.loads((export / "generator.json").read_text())
    for key in ("tokenizer", "text_encoder", "context"):
        del description[key]
    (export / "generator.json").write_text(json.dumps(description))
    return export


def members(folder):
    with tarfile.open(folder / "shard-000000.tar") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_the_real_sets_are_the_split_digits_in_each_prompts_colours_labelled_by_position(prompt_sets):
    out, manifests = prompt_sets
    alphas, digits = cd.glyph_alphas()
    train, heldout = cd.split()
    for name, indices in (("heldout", heldout), ("train", train)):
        files = members(out / name)
        metas = {k[:-5]: json.loads(v) for k, v in files.items() if k.endswith(".json")}
        assert sorted(m["index"] for m in metas.values()) == sorted(i for i in indices if digits[i] in (3, 7))
        assert manifests[name].class_names == PROMPTS and manifests[name].num_samples == len(metas)
        for key, meta in metas.items():
            label = int(files[f"{key}.cls"])
            assert PROMPTS[label] == files[f"{key}.txt"].decode() and meta["digit"] == (3, 7)[label]
        key, meta = next(iter(metas.items()))
        from io import BytesIO

        from PIL import Image

        pixels = np.asarray(Image.open(BytesIO(files[f"{key}.png"])))
        assert (pixels == cd.render(alphas[meta["index"]], 1, 0)).all(), "rendered as the training shards"
    assert parse_prompt(PROMPTS[1]) == (7, 1, 0)
    with pytest.raises(PromptShardError, match="--prompts 'a white 3': not a colour-digit prompt"):
        parse_prompt("a white 3")


def test_hiresgan_eval_scores_a_text_export_on_held_out_digits(text_export, prompt_sets, tmp_path, monkeypatch, capsys):
    from launch.cli import main

    monkeypatch.setattr(cas_module, "STEPS", 20)
    out, manifests = prompt_sets
    report_path = tmp_path / "eval.json"
    argv = ["eval", str(text_export), "--metrics", "cas", "--data", str(out / "heldout"), "--cas-per-class", "12"]
    argv += ["--cas-ceiling-data", str(out / "train"), "--classes", *PROMPTS, "--out", str(report_path)]
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads(report_path.read_text())
    assert list(report["cas_per_class"]) == PROMPTS and list(report["cas_real_per_class"]) == PROMPTS
    setup = report["cas_setup"]
    assert setup["num_test"] == manifests["heldout"].num_samples, "every held-out image is tested"
    assert setup["num_real_train"] == 24 and setup["prompts"] == PROMPTS
    assert 0 <= report["cas"] <= 1 and report["cas_real"] > 0.5, "3 vs 7 in one colour pair is learnable"


def test_the_generated_images_are_those_synth_writes(text_export, tmp_path):
    from trainer.export import load_generator
    from trainer.sampling.synth import synthesize

    G, description = load_generator(text_export)
    images, labels = cas_module.generated(G, description, [0, 1], 2, seed=0, truncation=1.0, prompts=PROMPTS)
    synthesize(text_export, tmp_path / "synth", per_class=2, classes=PROMPTS)
    written, _ = cas_module.read_labelled(str(tmp_path / "synth"), resolution=16, channels=3)
    assert torch.equal(images, written) and labels.tolist() == [0, 1, 0, 1]


def test_missing_or_mismatched_prompts_are_one_clear_error(text_export, cond_export, prompt_sets, capsys):
    from launch.cli import main

    out, _ = prompt_sets
    base = ["--metrics", "cas", "--data", str(out / "heldout")]
    assert main(["eval", str(text_export), *base]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "text-to-image export, whose classes are prompts: give them with --classes" in err[0]
    assert main(["eval", str(text_export), *base, "--classes", *PROMPTS[::-1]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differ from the class names in --data's manifest" in err[0]
    assert main(["eval", str(cond_export), *base, "--classes", *PROMPTS]) == 2
    assert "is not a text-to-image export" in capsys.readouterr().err
