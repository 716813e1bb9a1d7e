"""data.mix: a synthetic set mixed into every batch at a set ratio, deterministic and resumable."""

import itertools

import pytest

from trainer.config import ConfigError, load_config, load_run_config, save_config
from trainer.data import stream_for
from trainer.data.mix import split_batch
from trainer.data.sources import DataError
from trainer.sampling.synth import synthesize

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture
def synth_set(cond_export, tmp_path):
    out = tmp_path / "synth"
    synthesize(cond_export, out, per_class=4, maxcount=10)
    return out


def _cfg(tmp_path, urls, *extra):
    return load_config(
        ROOT / "configs" / "digits.yaml",
        [f"data.urls={urls}", "data.workers=0", "data.prepare=none", f"run.out_dir={tmp_path}", *extra],
    )


def _take(cfg, n, *, start=0, rank=0, world=1, batch=8):
    stream = stream_for(cfg, rank=rank, world_size=world, batch_size=batch, start_batch=start)
    return list(itertools.islice(stream, n))


def test_a_training_stream_reads_a_synthetic_set_alone(synth_set, tmp_path):
    (batch,) = _take(_cfg(tmp_path, synth_set), 1, batch=16)
    assert batch.images.shape == (16, 1, 32, 32) and all(str(synth_set) in k for k in batch.keys)
    assert set(batch.labels.tolist()) <= set(range(10))


def test_each_batch_takes_its_share_from_the_mix_in_a_seeded_order(digit_shards, synth_set, tmp_path):
    _, pattern = digit_shards
    cfg = _cfg(tmp_path, pattern, f"data.mix.urls={synth_set}", "data.mix.fraction=0.25")
    batches = _take(cfg, 4)
    for b in batches:
        synthetic = [str(synth_set) in k for k in b.keys]
        assert len(b.keys) == 8 and sum(synthetic) == 2
        assert b.labels.shape == (8,) and b.images.shape == (8, 1, 32, 32)
    assert any(not any(str(synth_set) in k for k in b.keys[-2:]) for b in batches), "mixed, not appended"
    # Labels travel with their images through the shuffle: a synthetic key's label is its class.
    import json
    import tarfile

    truth = {}
    for shard in synth_set.glob("shard-*.tar"):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".json"):
                    truth[f"{shard}#{m.name[:-5]}"] = json.loads(tar.extractfile(m).read())["class"]
    for b in batches:
        for key, label in zip(b.keys, b.labels.tolist()):
            if key in truth:
                assert truth[key] == label
    again = _take(cfg, 4)
    assert [b.keys for b in again] == [b.keys for b in batches]
    resumed = _take(cfg, 2, start=2)
    assert [b.keys for b in resumed] == [b.keys for b in batches[2:]]
    assert all((r.images == b.images).all() for r, b in zip(resumed, batches[2:]))


def test_fraction_one_reads_only_the_mix(digit_shards, synth_set, tmp_path):
    _, pattern = digit_shards
    (b,) = _take(_cfg(tmp_path, pattern, f"data.mix.urls={synth_set}", "data.mix.fraction=1"), 1)
    assert all(str(synth_set) in k for k in b.keys)


def test_the_mix_section_round_trips_through_the_run_config(synth_set, tmp_path):
    cfg = _cfg(tmp_path, synth_set, f"data.mix.urls={synth_set}", "data.mix.fraction=0.5")
    save_config(cfg, cfg.run_dir)
    assert load_run_config(cfg.run_dir).data.mix.fraction == 0.5


def test_bad_mix_settings_name_the_key(digit_shards, tmp_path):
    _, pattern = digit_shards
    with pytest.raises(ConfigError, match="data.mix.urls"):
        _cfg(tmp_path, pattern, "data.mix.fraction=0.5")
    with pytest.raises(ConfigError, match="data.mix.fraction"):
        _cfg(tmp_path, pattern, "data.mix.urls=x", "data.mix.fraction=-0.1")
    with pytest.raises(DataError, match="data.mix.urls: .*not found"):
        _take(_cfg(tmp_path, pattern, f"data.mix.urls={tmp_path}/none-{{0..1}}.tar", "data.mix.fraction=0.5"), 1)
    assert split_batch(0.3, 10) == (7, 3) and split_batch(1.0, 4) == (0, 4)
    with pytest.raises(DataError, match="takes 0 of the 8 images"):
        split_batch(0.05, 8)
    with pytest.raises(DataError, match="takes all 8 images"):
        split_batch(0.97, 8)


def test_preflight_checks_the_mixed_in_set_before_any_rank_starts(digit_shards, synth_set, tmp_path):
    import numpy as np

    from launch.preflight import check_mix
    from trainer.shards import write_shards

    _, pattern = digit_shards
    check_mix(_cfg(tmp_path, pattern, f"data.mix.urls={synth_set}", "data.mix.fraction=0.5"))
    with pytest.raises(ConfigError, match="'data.mix.urls': 2 of 2 shard"):
        check_mix(_cfg(tmp_path, pattern, f"data.mix.urls={tmp_path}/none-{{0..1}}.tar", "data.mix.fraction=0.5"))
    np.savez(tmp_path / "plain.npz", images=np.zeros((4, 8, 8), np.uint8))
    write_shards(tmp_path / "plain.npz", tmp_path / "plain", resolution=8)
    with pytest.raises(ConfigError, match="'data.mix.urls': data.num_classes is 10 but these shards carry no labels"):
        check_mix(_cfg(tmp_path, pattern, f"data.mix.urls={tmp_path / 'plain'}", "data.mix.fraction=0.5"))
