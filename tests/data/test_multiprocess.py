"""Real DataLoader worker processes and a real training run fed over HTTP."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from datakit import write_index_shards

from trainer.data.stream import StreamSpec, make_loader

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def rank_keys(urls, *, rank, world_size, workers, batch_size, batches):
    spec = StreamSpec(urls=tuple(urls), seed=3, rank=rank, world_size=world_size, batch_size=batch_size,
                      resolution=8, channels=1, labeled=True, xflip=False, shuffle_buffer=4)
    loader = make_loader(spec, workers)
    return [key for _ in range(batches) for key in next(loader).keys]


@pytest.mark.parametrize("shards, per_shard, batch_size", [(8, 10, 5), (3, 8, 3)])
def test_two_ranks_times_two_workers_see_every_sample_once_per_pass(tmp_path, shards, per_shard, batch_size):
    """8 shards over 4 slots (2 each), and 3 shards < 4 slots (every slot reads all, keeps every 4th)."""
    urls = [str(p) for p in write_index_shards(tmp_path, shards=shards, per_shard=per_shard)]
    total = shards * per_shard
    per_rank_batches = total // 2 // batch_size  # one pass of this rank's two slots
    keys = []
    for rank in range(2):
        keys += rank_keys(urls, rank=rank, world_size=2, workers=2, batch_size=batch_size, batches=per_rank_batches)
    assert len(keys) == total and len(set(keys)) == total


def test_a_short_training_run_streams_its_shards_over_http(tmp_path, serve, digit_shards):
    server = serve(digit_shards[0])
    tiny = ["model.channel_base=256", "model.channel_max=16", "model.z_dim=16", "model.w_dim=16",
            "model.mapping_layers=1", "train.batch_size=8", "train.log_every=1", "loss.d_reg_interval=4",
            "loss.g_reg_interval=2", "train.threads=1", "launch.nproc_per_node=1", "train.kimg=0.024"]
    result = subprocess.run(
        [sys.executable, "-m", "launch", "train", "configs/digits.yaml", *tiny, "data.workers=1",
         f"data.urls={server.base}/manifest.json", "data.prepare=none", "data.on_error=fail",
         f"run.out_dir={tmp_path}", "run.name=http", "metrics.port=0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    records = [json.loads(line) for line in (tmp_path / "http" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["kimg"] == pytest.approx(0.024)
    assert all(0.0 <= r["data_wait_fraction"] <= 1.0 for r in records)
    assert any(path.startswith("/shard-") for path in server.requests)
    assert (tmp_path / "http" / "export" / "generator.safetensors").is_file()
    # the class names come from the manifest read over HTTP
    exported = json.loads((tmp_path / "http" / "export" / "generator.json").read_text())
    assert exported["class_names"] == [str(d) for d in range(10)]


def test_a_worker_process_that_hits_bad_data_fails_with_the_shard_named(tmp_path):
    from trainer.data.sources import DataError

    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    spec = StreamSpec(urls=(str(junk),), seed=0, rank=0, world_size=1, batch_size=2, resolution=8, channels=1,
                      labeled=False, xflip=False, shuffle_buffer=1, on_error="fail")
    with pytest.raises(DataError, match=r"(?s)DataLoader worker process 0.*shard .*junk.tar: unreadable: "
                                        r"TarDamage: invalid tar header at byte 0"):
        next(make_loader(spec, 1))
