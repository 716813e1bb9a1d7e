"""hiresgan synth: labelled shard sets from a conditional export (trainer/sampling/synth.py)."""

import json
import os

import numpy as np
import pytest

from trainer.sampling.synth import SynthError, synthesize


def _members(folder):
    import tarfile

    out = {}
    for shard in sorted(folder.glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                out[m.name] = tar.extractfile(m).read()
    return out


def test_writes_a_labelled_set_that_stock_webdataset_and_the_trainer_read(cond_export, tmp_path):
    import webdataset as wds

    from trainer.data.sources import resolve_urls
    from trainer.shards import read_manifest

    out = tmp_path / "synth"
    m = synthesize(cond_export, out, per_class=7, maxcount=16)
    assert m.num_samples == 70 and m.num_classes == 10 and m.labelled and m.resolution == 32 and m.channels == 1
    assert [s.count for s in m.shards] == [16, 16, 16, 16, 6]
    assert read_manifest(str(out)).urls == "shard-{000000..000004}.tar"
    assert not (tmp_path / "synth.partial").exists()
    ds = wds.WebDataset(os.path.join(out, m.urls), shardshuffle=False).decode("l8").to_tuple("png", "cls", "json")
    rows = list(ds)
    assert len(rows) == 70 and rows[0][0].shape == (32, 32) and rows[0][0].dtype == np.uint8
    labels = [int(c) for _, c, _ in rows]
    assert np.bincount(labels).tolist() == [7] * 10
    assert labels[:10] == list(range(10)), "classes interleave, so every shard holds every class"
    assert all(meta["class"] == c for (_, c, meta) in rows)
    assert len(resolve_urls(str(out))) == 5


def test_same_arguments_give_the_same_bytes_and_a_class_subset_the_same_latents(cond_export, tmp_path):
    synthesize(cond_export, tmp_path / "a", per_class=3)
    synthesize(cond_export, tmp_path / "b", per_class=3)
    assert _members(tmp_path / "a") == _members(tmp_path / "b")
    sub = synthesize(cond_export, tmp_path / "c", per_class=3, classes=["7", "3"], truncation=0.5)
    assert sub.num_samples == 6 and sub.num_classes == 10 and sub.args["classes"] == ["7", "3"]
    metas = [json.loads(v) for k, v in sorted(_members(tmp_path / "c").items()) if k.endswith(".json")]
    full = {
        (m["class"], m["n"]): m["seed"]
        for m in (json.loads(v) for k, v in _members(tmp_path / "a").items() if k.endswith(".json"))
    }
    assert [m["class"] for m in metas] == [7, 3, 7, 3, 7, 3]
    assert all(full[(m["class"], m["n"])] == m["seed"] for m in metas)


class Interrupted(Exception):
    pass


def test_an_interrupted_run_leaves_no_set_and_a_rerun_resumes_it(cond_export, tmp_path, monkeypatch):
    import trainer.sampling.synth as synth

    out = tmp_path / "synth"
    real_write, calls, fail = synth._write_shard, [], [True]

    def failing(path, *args, **kwargs):
        calls.append(path.name)
        if len(calls) == 2 and fail[0]:
            raise Interrupted  # as a kill or Ctrl-C would, half-way through the set
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(synth, "_write_shard", failing)
    with pytest.raises(Interrupted):
        synthesize(cond_export, out, per_class=4, maxcount=16)
    partial = tmp_path / "synth.partial"
    assert not out.exists() and sorted(p.name for p in partial.glob("*.tar")) == ["shard-000000.tar"]
    assert not list(partial.glob(".shard-*")) and not (partial / "manifest.json").exists()
    first = (partial / "shard-000000.tar").stat().st_ino
    calls.clear()
    fail[0] = False
    synthesize(cond_export, out, per_class=4, maxcount=16)
    assert calls == ["shard-000001.tar", "shard-000002.tar"], "the finished shard is kept"
    assert (out / "shard-000000.tar").stat().st_ino == first
    monkeypatch.setattr(synth, "_write_shard", real_write)
    synthesize(cond_export, tmp_path / "fresh", per_class=4, maxcount=16)
    assert _members(out) == _members(tmp_path / "fresh")


def test_other_arguments_restart_an_unfinished_run(cond_export, tmp_path):
    partial = tmp_path / "synth.partial"
    (partial / ".progress").mkdir(parents=True)
    (partial / ".progress" / "synth.json").write_text('{"fingerprint": "other"}')
    (partial / "shard-000000.tar").write_bytes(b"stale")
    m = synthesize(cond_export, tmp_path / "synth", per_class=2)
    assert m.num_samples == 20 and len(_members(tmp_path / "synth")) == 60


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(per_class=0), "--per-class 0: must be >= 1"),
        (dict(per_class=2, classes=["3", "eleven"]), "--classes 'eleven': .* has no such class; its classes are 0, 1"),
        (dict(per_class=2, classes=["3", "3"]), "twice"),
        (dict(per_class=2, truncation=0.0), "--truncation"),
    ],
)
def test_bad_arguments_fail_before_anything_is_written(cond_export, tmp_path, kwargs, match):
    with pytest.raises(SynthError, match=match):
        synthesize(cond_export, tmp_path / "synth", **kwargs)
    assert not (tmp_path / "synth").exists() and not (tmp_path / "synth.partial").exists()


def test_an_unconditional_export_is_refused(uncond_export, tmp_path):
    with pytest.raises(SynthError, match="is unconditional .* needs classes"):
        synthesize(uncond_export, tmp_path / "synth", per_class=2)
    assert not (tmp_path / "synth.partial").exists()


def test_a_folder_holding_shards_is_kept_unless_overwrite(cond_export, tmp_path, capsys):
    from launch.cli import main

    out = tmp_path / "synth"
    assert main(["synth", str(cond_export), "--per-class", "2", "--out", str(out), "--quiet"]) == 0
    before = _members(out)
    assert main(["synth", str(cond_export), "--per-class", "3", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a shard set (1 shard(s), manifest.json); pass --overwrite" in err[0]
    assert _members(out) == before and not (tmp_path / "synth.partial").exists()
    assert main(["synth", str(cond_export), "--per-class", "3", "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert len(_members(out)) == 90
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(SynthError, match="not a shard set"):
        synthesize(cond_export, tmp_path / "notes", per_class=1, overwrite=True)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_a_text_export_takes_prompts_as_classes_and_writes_captions(tmp_path):
    import tarfile

    from synthkit import write_text_export

    export = write_text_export(tmp_path / "text")
    with pytest.raises(SynthError, match="text-to-image export: give the prompts"):
        synthesize(export, tmp_path / "none", per_class=2)
    m = synthesize(export, tmp_path / "synth", per_class=2, classes=["a red three", "a blue seven"])
    assert m.num_classes == 2 and m.class_names == ["a red three", "a blue seven"] and m.channels == 3
    with tarfile.open(tmp_path / "synth" / "shard-000000.tar") as tar:
        assert tar.extractfile("00000001.txt").read() == b"a blue seven"
        assert tar.extractfile("00000001.cls").read() == b"1"
