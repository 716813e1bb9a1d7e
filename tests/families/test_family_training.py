"""Each family trains a few steps on 2 real ranks (elastic agent, DeepSpeed engines, shards)
through the CLI, then its export is sampled through the CLI. One run per family, tiny models."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainer.config import load_run_config
from trainer.models import build_networks

ROOT = Path(__file__).resolve().parents[2]
COMMON = [
    "launch.nproc_per_node=2",
    "train.batch_size=8",
    "train.kimg=0.032",
    "train.log_every=2",
    "data.workers=0",
    "train.threads=1",
    "metrics.port=0",
    "data.prepare=none",
]
# family config -> tiny overrides; each run also exercises a different loss choice.
CASES = {
    "biggan": [
        "model.channel_base=128",
        "model.channel_max=16",
        "model.z_dim=8",
        "model.class_embed_dim=4",
        "augment.kind=diffaugment",
    ],
    "dcgan_conditional": [
        "model.channel_base=64",
        "model.channel_max=16",
        "model.z_dim=8",
        "loss.kind=hinge",
        "augment.kind=ada",
        "augment.ada_interval=2",
        "augment.ada_p=0.2",
    ],
    "mlp": [
        "model.mlp_hidden=32",
        "model.mlp_layers=2",
        "model.z_dim=8",
        "loss.kind=wgan_gp",
        "loss.r1_gamma=1",
        "loss.d_reg_interval=2",
    ],
    "wgan_gp": ["model.channel_base=64", "model.channel_max=16", "model.z_dim=8", "loss.drift_weight=0.001"],
}

pytestmark = pytest.mark.slow


def hiresgan(*args):
    return subprocess.run(
        [sys.executable, "-m", "launch", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def cfg_kind(name):
    return name.split("_")[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_family_trains_on_two_ranks_exports_and_samples(name, digit_shards, tmp_path):
    _, pattern = digit_shards
    result = hiresgan(
        "train",
        f"configs/{name}.yaml",
        *COMMON,
        *CASES[name],
        f"data.urls={pattern}",
        f"run.out_dir={tmp_path}",
        f"run.name={name}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    run_dir = tmp_path / name
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 4
    seen = set()
    for record in records:
        assert all(torch.isfinite(torch.tensor(v)) for v in record["losses"].values()), record
        seen |= set(record["losses"])
    assert {"G/adversarial", "D/adversarial"} <= seen
    if cfg_kind(name) == "biggan":
        assert "G/orthogonal" in seen
    if "loss.kind=wgan_gp" in CASES[name]:
        assert {"D/gradient_penalty", "D/r1"} <= seen
    if name == "wgan_gp":  # the config's own loss, plus ProGAN's drift term
        assert {"D/gradient_penalty", "D/drift"} <= seen
    checkpoint = next((run_dir / "checkpoints").glob("step-*"))
    assert json.loads((checkpoint / "state.json").read_text())["world_size"] == 2
    if "augment.kind=ada" in CASES[name]:  # ADA's p is checkpointed, equal on both ranks
        p = [load_file(str(checkpoint / f"rank-{r}.safetensors"))["ada_p"] for r in (0, 1)]
        assert torch.equal(p[0], p[1]) and 0 <= p[0] <= 1

    # Weights moved: the export differs from the networks' seeded initialisation.
    cfg = load_run_config(run_dir)
    torch.manual_seed(cfg.run.seed)
    G0, _ = build_networks(cfg)
    exported = load_file(str(run_dir / "export" / "generator.safetensors"))
    initial = G0.state_dict()
    assert set(exported) == set(initial)
    moved = [
        k
        for k in exported
        if exported[k].is_floating_point() and not torch.allclose(exported[k], initial[k].to(exported[k].dtype))
    ]
    assert len(moved) >= len([k for k in initial if k.endswith("weight")]) // 2, moved

    out = tmp_path / "samples"
    args = ["--class", "7"] if cfg.c_dim else []
    sampled = hiresgan("sample", run_dir / "export", "--seeds", "0-2", *args, "--truncation", "0.7", "--out", out)
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert len(list(out.glob("seed*.png"))) == 3
