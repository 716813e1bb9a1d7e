"""The digit feature network and `hiresgan eval` on a real (tiny) export against the digit shards."""

import json

import numpy as np
import pytest
import torch

from launch.cli import main
from trainer.evaluation import scores
from trainer.evaluation.features import DigitFeatures
from trainer.evaluation.stats import iter_real_batches, real_features, shard_files


def test_digit_features_tell_real_digits_from_other_images(digit_shards):
    _, pattern = digit_shards
    extractor = DigitFeatures()
    real = real_features(pattern, extractor, num=1797, resolution=32, channels=1)["features"]
    half = scores.fid(real[:900], real[900:])
    # Same images blurred into blobs: clearly further away than two halves of the real set.
    images = torch.cat(list(iter_real_batches(shard_files(pattern), num=900, resolution=32, channels=1, batch=300)))
    blurred = torch.nn.functional.avg_pool2d(images.float(), 5, 1, 2).round().to(torch.uint8)
    far = scores.fid(real[:900], extractor(blurred)[0])
    assert half < 0.2 * far, (half, far)
    # The shipped classifier recognises the real digits: a high IS (at most 10: one sure class each, all used).
    probabilities = extractor(images)[1]
    assert scores.inception_score(probabilities)[0] > 6  # 7.39 on all 1,797 real digits


def test_hiresgan_eval_cli_reports_metrics_and_caches_real_features(tiny_export, digit_shards, tmp_path, capsys):
    _, pattern = digit_shards
    cache, out = tmp_path / "cache", tmp_path / "report.json"
    argv = [
        "eval",
        str(tiny_export),
        "--data",
        pattern,
        "--num",
        "64",
        "--num-real",
        "200",
        "--cache",
        str(cache),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["num_real"] == 200 and report["num_fake"] == 64
    assert report["comparable_to_published"] is False
    # An untrained generator draws no digits: far from the real set, low precision.
    assert report["fid"] > 1 and report["precision"] < 0.5 and report["kid"] > 0
    assert 1 <= report["is"] <= 10
    assert len(list(cache.glob("real-digits-*.safetensors"))) == 1
    assert main(argv) == 0  # second run reads the cache: same numbers
    again = json.loads(out.read_text())
    assert again["fid"] == pytest.approx(report["fid"], rel=1e-9)


def test_eval_bad_input_is_one_clear_error(tiny_export, digit_shards, tmp_path, capsys):
    _, pattern = digit_shards
    assert main(["eval", str(tiny_export), "--data", pattern, "--metrics", "fid,psnr"]) == 2
    assert "--metrics" in capsys.readouterr().err
    assert main(["eval", str(tiny_export), "--data", str(tmp_path / "none-{0..1}.tar")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", str(tiny_export), "--data", pattern, "--features", "inception"]) == 2
    assert "--inception-weights" in capsys.readouterr().err


def test_digit_feature_weights_with_wrong_hash_are_refused(tmp_path):
    from trainer.evaluation import digit_features

    with pytest.raises(ValueError, match="SHA-256"):
        digit_features.load(digit_features.WEIGHTS, "0" * 64)


def test_digits_eval_on_an_untrained_export(tiny_export):
    from trainer.evaluation.digits_gate import evaluate

    report = evaluate(tiny_export, per_class=5)
    assert len(report["accuracy_per_class"]) == 10 and sum(report["predicted_histogram"]) == 50
    # Random weights draw no digits: worse than the real set is against itself (~0).
    assert report["digits_fid"] > 1 and report["class_accuracy"] < 0.5


def test_digits_eval_check_fails_an_untrained_export(tiny_export, capsys):
    from trainer.evaluation.digits_gate import main

    assert main([str(tiny_export), "--per-class", "5"]) == 0  # a report alone never fails
    assert main([str(tiny_export), "--per-class", "5", "--check"]) == 1
    assert "below the quality bar: class accuracy" in capsys.readouterr().err


def test_digit_coverage_counts_only_clearly_drawn_digits():

    from trainer.evaluation.digits_gate import coverage

    # 100 samples: digits 0-8 drawn clearly 10x each; "9" only once (under the 2% share) and ten
    # blotches the classifier calls "9" with low confidence.
    predicted = np.array([d for d in range(9) for _ in range(10)] + [9] * 10)
    confidence = np.array([0.95] * 90 + [0.95] + [0.3] * 9)
    report = coverage(predicted, confidence)
    assert report["digits_seen"] == 10 and report["digits_covered"] == 9
    assert report["confident_share"] == 0.91 and report["predicted_histogram"][9] == 10
    assert report["confident_histogram"] == [10] * 9 + [1]  # the one clear nine is all that counts
    confidence[91:93] = 0.9  # three clear nines now: 3% of the samples
    assert coverage(predicted, confidence)["digits_covered"] == 10


def test_quality_bar_per_kind_of_generator():
    from trainer.evaluation.digits_gate import quality_misses

    hist = {"predicted_histogram": [50] * 10, "accuracy_per_class": [0.9] * 10}
    assert quality_misses({"class_accuracy": 0.93, "digits_covered": 10, **hist}) == []
    assert "89.0%" in quality_misses({"class_accuracy": 0.89, "digits_covered": 10, **hist})[0]
    assert "3 of the ten" in quality_misses({"class_accuracy": 0.93, "digits_covered": 7, **hist})[0]
    assert quality_misses({"digits_covered": 10, "predicted_histogram": [50] * 10}) == []
    assert "1 of the ten" in quality_misses({"digits_covered": 9, "predicted_histogram": [50] * 10})[0]
    confident = {"digits_covered": 9, "predicted_histogram": [50] * 10, "confident_histogram": [40] * 9 + [3]}
    assert "[40, 40, 40, 40, 40, 40, 40, 40, 40, 3]" in quality_misses(confident)[0]


def test_watch_evaluates_each_checkpoint_once_into_jsonl_and_prometheus(tiny_run, digit_shards):
    from evalkit import make_checkpoint
    from prometheus_client import CollectorRegistry

    from trainer.evaluation.watch import EvalGauges, evaluate_new_checkpoints

    _, pattern = digit_shards
    make_checkpoint(tiny_run, 10, 2000, seed=1)
    make_checkpoint(tiny_run, 20, 4000, seed=2)
    make_checkpoint(tiny_run, 30, 6000, seed=3)  # same 4-kimg bucket as step 20: skipped
    registry = CollectorRegistry()
    gauges = EvalGauges(registry, job="r", features="digits")
    kwargs = dict(names=["fid", "pr"], num_fake=32, num_real=100)
    records = evaluate_new_checkpoints(tiny_run, pattern, every_kimg=4, gauges=gauges, **kwargs)
    assert [r["checkpoint"] for r in records] == ["step-00000010", "step-00000020"]
    lines = [json.loads(line) for line in (tiny_run / "eval.jsonl").read_text().splitlines()]
    assert [line["kimg"] for line in lines] == [2.0, 4.0] and all(line["fid"] > 0 for line in lines)
    labels = {"job": "r", "features": "digits"}
    assert registry.get_sample_value("hiresgan_eval_fid", labels) == pytest.approx(lines[-1]["fid"])
    assert registry.get_sample_value("hiresgan_eval_kimg", labels) == 4.0
    assert registry.get_sample_value("hiresgan_eval_precision_ratio", labels) == lines[-1]["precision"]
    # A restarted watcher does not evaluate anything twice.
    assert evaluate_new_checkpoints(tiny_run, pattern, every_kimg=4, **kwargs) == []
