"""The D caption probe (trainer/evaluation/caption_probe.py) runs and reports, on a tiny D."""

import re

import pytest

from tests.text2img.conftest import TINY
from trainer.evaluation import caption_probe


def test_probe_trains_a_tiny_d_and_scores_held_out_digits(colour_shards, capsys):
    tiny = [o for o in TINY if not o.startswith("data.resolution")] + ["data.resolution=32"]
    args = ["configs/text2img_digits.yaml", "--steps", "2", "--every", "1", f"data.urls={colour_shards}", *tiny]
    assert caption_probe.main(args) == 0
    lines = re.findall(r"step (\d+): held-out right caption above wrong digit ([\d.]+)%", capsys.readouterr().out)
    assert [int(s) for s, _ in lines] == [1, 2] and all(0 <= float(a) <= 100 for _, a in lines)


def test_probe_names_a_checkpoint_without_d_weights(colour_shards, tmp_path):
    with pytest.raises(SystemExit, match="no D weights"):
        caption_probe.main(
            ["configs/text2img_digits.yaml", f"data.urls={colour_shards}", "--checkpoint", str(tmp_path)]
        )
