"""Byte-identical output for any worker count and across reruns; reruns skip finished shards."""

import os

import pytest
from shardkit import make_folder, read_back, shard_bytes

from trainer.shards import write_shards

FLAGS = dict(resolution=8, labels="from-folder-names", maxcount=2)


def test_workers_1_and_2_and_reruns_are_byte_identical(tmp_path):
    make_folder(tmp_path / "src", per_class=10, size=(12, 9))
    m1 = write_shards(tmp_path / "src", tmp_path / "w1", workers=1, **FLAGS)
    m2 = write_shards(tmp_path / "src", tmp_path / "w2", workers=2, **FLAGS)
    assert len(m1.shards) == 10
    assert shard_bytes(tmp_path / "w1") == shard_bytes(tmp_path / "w2")
    assert m1 == m2
    # a fresh run into a new folder reproduces the bytes too
    write_shards(tmp_path / "src", tmp_path / "again", **FLAGS)
    assert shard_bytes(tmp_path / "again") == shard_bytes(tmp_path / "w1")
    assert (tmp_path / "w1" / "manifest.json").read_bytes() == (tmp_path / "w2" / "manifest.json").read_bytes()


def test_rerun_skips_finished_shards_and_redoes_a_deleted_one(tmp_path):
    make_folder(tmp_path / "src", per_class=3)
    out = tmp_path / "out"
    write_shards(tmp_path / "src", out, **FLAGS)
    before = shard_bytes(out)
    paths = sorted(p for p in os.listdir(out) if p.startswith("shard-"))
    # push the mtimes into the past so a rewrite would show even on coarse clocks
    for p in paths:
        os.utime(out / p, ns=(1_000_000_000, 1_000_000_000))
    os.remove(out / "shard-000001.tar")
    (out / ".shard-000002.tar.partial").write_bytes(b"half a shard")

    write_shards(tmp_path / "src", out, **FLAGS, overwrite=True)
    assert shard_bytes(out) == before
    assert os.stat(out / "shard-000000.tar").st_mtime_ns == 1_000_000_000  # skipped
    assert os.stat(out / "shard-000002.tar").st_mtime_ns == 1_000_000_000  # skipped
    assert os.stat(out / "shard-000001.tar").st_mtime_ns != 1_000_000_000  # rewritten
    assert not (out / ".shard-000002.tar.partial").exists()
    assert len(read_back(out)) == 6


def test_corrupted_shard_is_rewritten(tmp_path):
    make_folder(tmp_path / "src", per_class=2)
    out = tmp_path / "out"
    write_shards(tmp_path / "src", out, **FLAGS)
    good = shard_bytes(out)
    with open(out / "shard-000000.tar", "r+b") as f:
        f.seek(600)
        f.write(b"XX")
    write_shards(tmp_path / "src", out, **FLAGS, overwrite=True)
    assert shard_bytes(out) == good


def test_changed_flags_rewrite_and_drop_leftover_shards(tmp_path):
    make_folder(tmp_path / "src", per_class=3)
    out = tmp_path / "out"
    write_shards(tmp_path / "src", out, **FLAGS)
    assert len(shard_bytes(out)) == 3
    m = write_shards(tmp_path / "src", out, resolution=8, labels="from-folder-names", maxcount=4, overwrite=True)
    assert sorted(shard_bytes(out)) == ["shard-000000.tar", "shard-000001.tar"]
    assert [s.count for s in m.shards] == [4, 2]
    assert sorted(os.listdir(out / ".progress")) == ["shard-000000.json", "shard-000001.json"]
    assert len(read_back(out)) == 6


def test_changed_source_file_invalidates_finished_shards(tmp_path):
    arrays = make_folder(tmp_path / "src", per_class=2)
    out = tmp_path / "out"
    write_shards(tmp_path / "src", out, **FLAGS)
    before = shard_bytes(out)
    from PIL import Image

    Image.fromarray(255 - arrays["cat/0.png"]).save(tmp_path / "src" / "cat" / "0.png")
    write_shards(tmp_path / "src", out, **FLAGS, overwrite=True)
    after = shard_bytes(out)
    assert after["shard-000000.tar"] != before["shard-000000.tar"]


@pytest.mark.parametrize("fmt,quality", [("jpg", 90), ("webp", 80)])
def test_lossy_formats_are_deterministic_across_workers(tmp_path, fmt, quality):
    make_folder(tmp_path / "src", per_class=6, size=(20, 20))
    kw = dict(resolution=16, fmt=fmt, quality=quality, maxcount=5)
    write_shards(tmp_path / "src", tmp_path / "w1", workers=1, **kw)
    write_shards(tmp_path / "src", tmp_path / "w2", workers=2, **kw)
    assert shard_bytes(tmp_path / "w1") == shard_bytes(tmp_path / "w2")


def test_interrupted_run_leaves_finished_shards_and_resumes(tmp_path, monkeypatch):
    from trainer.shards.tarshard import ShardTar

    make_folder(tmp_path / "src", per_class=5)
    out = tmp_path / "out"
    write_shards(tmp_path / "src", tmp_path / "ref", **FLAGS)

    real_add, calls = ShardTar.add, []

    def crash_on_7th(self, key, fields):
        calls.append(key)
        if len(calls) == 7:
            raise RuntimeError("simulated crash")
        real_add(self, key, fields)

    monkeypatch.setattr(ShardTar, "add", crash_on_7th)
    with pytest.raises(RuntimeError):
        write_shards(tmp_path / "src", out, **FLAGS)
    monkeypatch.setattr(ShardTar, "add", real_add)

    assert sorted(os.listdir(out)) == [".progress", "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    for p in ("shard-000000.tar", "shard-000001.tar", "shard-000002.tar"):
        os.utime(out / p, ns=(1_000_000_000, 1_000_000_000))
    write_shards(tmp_path / "src", out, **FLAGS)
    assert shard_bytes(out) == shard_bytes(tmp_path / "ref")
    assert os.stat(out / "shard-000002.tar").st_mtime_ns == 1_000_000_000
