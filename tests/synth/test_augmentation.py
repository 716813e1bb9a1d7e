"""The augmentation table (trainer/evaluation/augmentation.py): real, real+synth, synth rows on one test set."""

import torch

from trainer.data.digits import load_digit_arrays
from trainer.evaluation.augmentation import main, markdown, table


def test_rows_share_one_held_out_test_set():
    images, labels = load_digit_arrays()
    x, y = torch.from_numpy(images)[:, None], torch.from_numpy(labels)
    synth = (x[:300], y[:300])  # a stand-in 'synthetic' set
    result = table((x, y), synth, [2, 4], synth_per_class=10, steps=10)
    assert [(r["train"], r["real_per_class"], r["synth_per_class"]) for r in result["rows"]] == [
        ("real", 2, 0),
        ("real+synth", 2, 10),
        ("real", 4, 0),
        ("real+synth", 4, 10),
        ("synth", 0, 10),
    ]
    assert result["num_test"] == len(y) - 40 and result["synth_counts"] == [10] * 10
    assert all(0 <= r["accuracy"] <= 1 and len(r["per_class"]) == 10 for r in result["rows"])
    assert markdown(result).count("\n") == 6
    shared = table((x, y), synth, [2], synth_per_class=10, synth_share=0.5, steps=10)
    assert shared["synth_share"] == 0.5 and [r["train"] for r in shared["rows"]] == ["real", "real+synth", "synth"]


def test_bad_counts_are_one_clear_error(capsys):
    assert main(["--real", "x", "--synth", "y", "--real-per-class", "0,5"]) == 2
    assert "--real-per-class '0,5'" in capsys.readouterr().err
