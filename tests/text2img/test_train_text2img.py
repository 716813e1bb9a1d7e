"""text2img trained end to end through the real CLI: 2 ranks, DeepSpeed engines, captioned shards,
R1 + path length, ADA, checkpoint, exact resume, export, `hiresgan sample --prompt/--prompts`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def hiresgan(*args):
    return subprocess.run(
        [sys.executable, "-m", "launch", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def train(tiny, shards, out, name, kimg, *extra):
    result = hiresgan(
        "train",
        "configs/text2img_digits.yaml",
        *tiny,
        f"data.urls={shards}",
        "data.prepare=none",
        f"run.out_dir={out}",
        f"run.name={name}",
        f"train.kimg={kimg}",
        "train.checkpoint_kimg=0.032",
        "text.mismatch=word_swap_hard",  # D-scored negatives: resume must stay exact with them too
        "text.contrastive_weight=1",  # and with the contrastive term (an extra augmented D pass)
        "text.contrastive_negatives=word_swap",  # its D-picked one-word swaps too
        "text.match_critic_weight=1",  # and the separate caption-matching critic (inside D's engine)
        "text.match_critic_channel_base=64",
        "text.match_critic_channel_max=8",
        "text.match_critic_augment=1",  # its translations are drawn from (seed, step, rank, phase)
        *extra,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return out / name


def test_train_resume_export_and_sample(tiny, colour_shards, tmp_path):
    straight = train(tiny, colour_shards, tmp_path, "straight", 0.064)
    first = train(tiny, colour_shards, tmp_path, "resumed", 0.032)
    resumed = train(tiny, colour_shards, tmp_path, "resumed", 0.064)
    assert first == resumed
    records = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    logged = {"D/mismatch", "D/contrastive", "G/contrastive", "D/contrastive_swap_acc"}
    logged |= {"D/match_critic", "D/match_critic_acc", "G/match_critic"}
    assert records and all(logged <= r["losses"].keys() for r in records)
    a = load_file(str(straight / "export" / "generator.safetensors"))
    b = load_file(str(resumed / "export" / "generator.safetensors"))
    assert a.keys() == b.keys() and all((a[k] - b[k]).abs().max() < 1e-5 for k in a)  # exact resume
    description = json.loads((straight / "export" / "generator.json").read_text())
    assert description["family"] == "text2img" and "seven" in description["tokenizer"]["vocab"]
    assert (straight / "samples" / "latest.png").is_file()

    from trainer.sampling.prompts import PromptError, sample_prompts

    with pytest.warns(UserWarning, match="purple"):  # in-process: one CLI start is enough
        paths = sample_prompts(
            straight / "export", ["a red seven on a purple background"], [0, 1, 2], tmp_path / "one", truncation=0.7
        )
    assert len(paths) == 3 and all(p.is_file() for p in paths)
    with pytest.raises(PromptError, match="--prompt is empty"):
        sample_prompts(straight / "export", [" "], [0], tmp_path / "none")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red 7 on a blue background\nthe digit two, drawn in green on black\n")
    result = hiresgan("sample", straight / "export", "--prompts", prompts, "--seeds", "0-1", "--out", tmp_path / "many")
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.relative_to(tmp_path / "many").as_posix() for p in (tmp_path / "many").rglob("*.png")) == [
        "0/seed0000.png",
        "0/seed0001.png",
        "1/seed0000.png",
        "1/seed0001.png",
    ]
