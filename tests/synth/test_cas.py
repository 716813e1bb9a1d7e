"""CAS (trainer/evaluation/cas.py): a classifier trained on generated images, tested on real ones,
beside the same classifier trained on as many real images (the ceiling)."""

import json

import pytest
import torch

from trainer.data.digits import load_digit_arrays
from trainer.evaluation import cas as cas_module
from trainer.evaluation.cas import CASError, cas, split_real

STEPS = 40  # enough for the stand-in generators below; the documented 300 are for real reports


@pytest.fixture(scope="module")
def digits():
    images, labels = load_digit_arrays()
    return torch.from_numpy(images)[:, None], torch.from_numpy(labels)


def test_the_ceiling_never_trains_on_a_test_image(digits):
    _, labels = digits
    train, test = split_real(labels, range(10), 30, seed=0)
    assert not set(train) & set(test) and len(train) + len(test) == len(labels)
    assert torch.bincount(labels[train]).tolist() == [30] * 10
    assert split_real(labels, range(10), 30, seed=0) == (train, test)
    with pytest.raises(CASError, match="--cas-per-class 175: class .* has 17[0-9] real images"):
        split_real(labels, range(10), 175, seed=0)


def test_a_perfect_generator_scores_near_the_ceiling_and_a_class_blind_one_near_chance(digits):
    from synthkit import DigitTable

    images, labels = digits
    table = images[:, 0].numpy(), labels.numpy()
    desc = {"family": "digit-table", "class_names": [str(k) for k in range(10)]}
    good = cas(DigitTable(*table), desc, "", per_class=20, steps=STEPS, real=digits)
    blind = cas(DigitTable(*table, ignore_class=True), desc, "", per_class=20, steps=STEPS, real=digits)
    assert good["cas_real"] > 0.6 and good["cas"] > good["cas_real"] - 0.15
    assert blind["cas"] < 0.3 and blind["cas_real"] == good["cas_real"], "seeded: same real split, same ceiling"
    assert good["cas_fake_read"] > 0.6 and blind["cas_fake_read"] < 0.3, "the ceiling reads class leakage"
    assert set(good["cas_per_class"]) == {str(k) for k in range(10)}
    assert good["cas_setup"]["num_test"] == len(labels) - 200 and good["cas_setup"]["num_real_train"] == 200


def test_hiresgan_eval_reports_cas_in_its_json(cond_export, digit_shards, tmp_path, monkeypatch, capsys):
    from launch.cli import main

    monkeypatch.setattr(cas_module, "STEPS", 20)
    out = tmp_path / "eval.json"
    rc = main(
        [
            "eval",
            str(cond_export),
            "--metrics",
            "cas",
            "--data",
            digit_shards[1],
            "--cas-per-class",
            "15",
            "--out",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert 0 <= report["cas"] <= 1 and 0 <= report["cas_real"] <= 1
    assert len(report["cas_per_class"]) == 10 and len(report["cas_real_per_class"]) == 10
    assert report["cas_setup"]["per_class"] == 15 and "fid" not in report


def test_an_unconditional_export_gets_one_clear_error(uncond_export, digit_shards, capsys):
    from launch.cli import main

    assert main(["eval", str(uncond_export), "--metrics", "fid,cas", "--data", digit_shards[1]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is unconditional" in err[0] and "drop cas from --metrics" in err[0]


def test_cas_is_exported_as_gauges_like_the_other_metrics():
    from prometheus_client import CollectorRegistry

    from trainer.evaluation.watch import EvalGauges

    registry = CollectorRegistry()
    EvalGauges(registry, job="j", features="digits").update(
        {
            "cas": 0.8,
            "cas_real": 0.95,
            "cas_fake_read": 0.9,
            "cas_per_class": {"0": 0.9, "1": None},
            "cas_real_per_class": {"0": 1.0},
        }
    )
    labels = {"job": "j", "features": "digits"}
    assert registry.get_sample_value("hiresgan_eval_cas_ratio", labels) == 0.8
    assert registry.get_sample_value("hiresgan_eval_cas_real_ratio", labels) == 0.95
    assert registry.get_sample_value("hiresgan_eval_cas_fake_read_ratio", labels) == 0.9

    def per_class(k, train):
        return registry.get_sample_value("hiresgan_eval_cas_class_ratio", {**labels, "class": k, "train": train})

    assert per_class("0", "synthetic") == 0.9 and per_class("0", "real") == 1.0 and per_class("1", "synthetic") is None


def test_a_text_export_without_prompts_is_asked_for_them(tmp_path, digit_shards):
    from synthkit import write_text_export

    from trainer.evaluation.run import evaluate

    with pytest.raises(CASError, match="text-to-image export, whose classes are prompts: give them with --classes"):
        evaluate(write_text_export(tmp_path / "text"), digit_shards[1], names=["cas"])
