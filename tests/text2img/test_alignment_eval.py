"""The alignment of text2img as an evaluation gauge (eval.metrics=alignment): config rules, the
in-memory sampler against an export's, and PeriodicEval writing the record and gauges without
touching training's RNG or G_ema."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry

from trainer.config import ConfigError, load_config
from trainer.data.colour_digits import all_triples, prompt
from trainer.evaluation import text_alignment as ta
from trainer.models.text2img import TextGenerator
from trainer.text.tokenizer import WordTokenizer, count_words

ROOT = Path(__file__).resolve().parents[2]
DIGITS, TEXT2IMG = ROOT / "configs" / "digits.yaml", ROOT / "configs" / "text2img_digits.yaml"


@pytest.fixture(scope="module")
def generator():
    """A tiny 32x32 RGB text2img G whose tokenizer knows every colour-digit prompt word; without
    gradients, like training's G_ema and a loaded export (the kernels' paths differ with them)."""
    words = count_words([prompt(*t) for t in all_triples()])
    torch.manual_seed(0)
    return (
        TextGenerator(
            z_dim=8,
            w_dim=16,
            img_resolution=32,
            img_channels=3,
            tokenizer=WordTokenizer.from_counts(words, context=8, max_words=50).to_json(),
            context=8,
            text_dim=16,
            text_layers=1,
            text_heads=2,
            attn_res=8,
            attn_heads=1,
            mapping_layers=1,
            channel_base=128,
            channel_max=8,
        )
        .eval()
        .requires_grad_(False)
    )


@pytest.mark.parametrize(
    "config, override, words",
    [
        (DIGITS, ["eval.metrics=fid,alignment"], ["eval.metrics", "alignment", "model.family=stylegan2"]),
        (TEXT2IMG, ["eval.metrics=alignment", "eval.every_kimg=1", "data.resolution=16"], ["eval.metrics", "3x32x32"]),
        (TEXT2IMG, ["eval.metrics=alignment", "eval.alignment_samples=0"], ["eval.alignment_samples", "at least 1"]),
    ],
)
def test_alignment_config_errors_name_the_key(config, override, words):
    with pytest.raises(ConfigError) as info:
        load_config(config, override)
    for word in words:
        assert word in str(info.value)


def test_alignment_alone_needs_no_feature_network_for_rgb_data():
    # digits features refuse 3x32x32 data, but only the feature metrics use them
    cfg = load_config(TEXT2IMG, ["eval.every_kimg=1", "eval.metrics=alignment"])
    assert cfg.eval.alignment_samples == 1
    with pytest.raises(ConfigError, match="eval.features"):
        load_config(TEXT2IMG, ["eval.every_kimg=1", "eval.metrics=alignment,fid"])


def test_in_memory_sampler_draws_what_the_export_draws(generator, tmp_path):
    from trainer.export import export_generator

    export_generator(generator, tmp_path / "export")
    images, truth = ta.sample_prompts(generator, ta.generator_tokenizer(generator), 1)
    again, truth_again = ta.sample_all(tmp_path / "export", 1, 1.0)
    assert images.shape == (560, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images, again) and np.array_equal(truth, truth_again)
    assert truth.tolist() == [list(t) for t in all_triples()]


def test_record_fields_flatten_the_report():
    truth = np.array([(0, 1, 2), (0, 0, 1)])  # (0 + 0) % 7 == 0: the second pair is withheld
    read = {"digit": np.array([0, 5]), "ink": np.array([1, 0]), "background": np.array([2, 1])}
    fields = ta.record_fields(ta.score(read, truth))
    assert fields["alignment_seen"] == 1.0 and fields["alignment_withheld"] == 0.0
    assert fields["alignment_withheld_ink"] == 1.0 and fields["alignment_overall_digit"] == 0.5
    assert len(fields) == 12


def _periodic(tmp_path, G, rank=0, world=2):
    from trainer.distributed import DistEnv
    from trainer.evaluation.periodic import PeriodicEval

    cfg = load_config(
        TEXT2IMG,
        [
            f"run.out_dir={tmp_path}",
            "run.name=a",
            "train.batch_size=8",
            "eval.every_kimg=0.016",
            "eval.metrics=alignment",
            "eval.data=/nowhere/shard-{000000..000001}.tar",  # alignment reads no real images
        ],
    )
    env = DistEnv(
        rank=rank, world_size=world, local_rank=rank, local_world_size=world, node="h", device=torch.device("cpu")
    )
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry()
    return PeriodicEval(cfg, env, G, registry=registry), registry, cfg


def test_periodic_alignment_writes_record_and_gauges_and_leaves_training_alone(generator, tmp_path):
    from trainer.checkpoint import Progress

    generator.train()  # evaluation must switch to eval mode and back
    weights = {k: v.clone() for k, v in generator.state_dict().items()}
    rng = torch.get_rng_state()
    evaluation, registry, cfg = _periodic(tmp_path, generator)  # loads the digit network: forked RNG
    assert torch.equal(torch.get_rng_state(), rng)
    assert evaluation.extractor is None  # alignment alone: no feature network (digits refuses RGB)
    progress = Progress(world_size=2)
    progress.step, progress.images_seen = 2, 16
    record = evaluation.after_step(progress)
    assert torch.equal(torch.get_rng_state(), rng) and generator.training
    assert all(torch.equal(v, weights[k]) for k, v in generator.state_dict().items())
    keys = ["alignment_seen", "alignment_withheld", "alignment_overall"]
    keys += [f"alignment_{s}_{a}" for s in ("seen", "withheld") for a in ("digit", "ink", "background")]
    assert all(0 <= record[k] <= 1 for k in keys), record
    assert record["alignment_samples_per_prompt"] == 1 and record["step"] == 2 and "fid" not in record
    lines = (cfg.run_dir / "eval.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["alignment_seen"] == record["alignment_seen"]
    labels = {"job": "a", "features": "digits"}
    assert registry.get_sample_value("hiresgan_eval_alignment_seen_ratio", labels) == record["alignment_seen"]
    assert registry.get_sample_value("hiresgan_eval_alignment_withheld_ratio", labels) == record["alignment_withheld"]
    ink = {**labels, "split": "withheld", "attribute": "ink"}
    assert registry.get_sample_value("hiresgan_eval_alignment_attribute_ratio", ink) == record["alignment_withheld_ink"]
    assert registry.get_sample_value("hiresgan_eval_kimg", labels) == 0.016
    assert evaluation.at_end(progress) is None  # this step is already evaluated
    generator.eval()  # module-scoped: as the other tests expect it


def test_other_ranks_skip_alignment(generator, tmp_path):
    from trainer.checkpoint import Progress

    evaluation, _, cfg = _periodic(tmp_path, generator, rank=1)
    assert evaluation.alignment is None  # no digit network off rank 0
    progress = Progress(world_size=2)
    progress.step, progress.images_seen = 2, 16
    assert evaluation.after_step(progress) is None and evaluation.last_step == 2
    assert not (cfg.run_dir / "eval.jsonl").exists()
