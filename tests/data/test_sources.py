"""Every kind of `data.urls` spec, for real: brace patterns, folders, manifests, http(s), pipe:."""

import hashlib
import json
import shlex
import sys

import numpy as np
import pytest
import torch
from datakit import image_bytes, index_of, write_index_shards, write_tar
from PIL import Image

from trainer.config import ConfigError, load_config
from trainer.data.stream import StreamSpec, make_loader
from trainer.data.sources import DataError, cloud_to_pipe, expand_urls, find_manifest, resolve_urls, split_spec


def one_pass(urls, total, *, labeled=True, channels=1, resolution=8, **kw):
    """The first epoch of a 1-rank, 0-worker stream as one batch of `total` samples."""
    spec = StreamSpec(urls=tuple(urls), seed=0, rank=0, world_size=1, batch_size=total, resolution=resolution,
                      channels=channels, labeled=labeled, xflip=False, shuffle_buffer=1, **kw)
    return next(make_loader(spec, 0))


def assert_indices(batch, total, classes=3):
    got = sorted((index_of(img.numpy()), int(lab)) for img, lab in zip(batch.images, batch.labels))
    assert got == [(i, i % classes) for i in range(total)]


def test_spec_splitting_keeps_pipe_commands_whole():
    spec = "a/s-{0..1}.tar b.tar :: pipe:curl -s http://h/x-{0..2}.tar\nhttps://h/y.tar"
    assert split_spec(spec) == ["a/s-{0..1}.tar", "b.tar", "pipe:curl -s http://h/x-{0..2}.tar", "https://h/y.tar"]
    assert expand_urls(spec)[:3] == ["a/s-0.tar", "a/s-1.tar", "b.tar"]
    assert expand_urls(spec)[3:6] == [f"pipe:curl -s http://h/x-{i}.tar" for i in range(3)]
    assert cloud_to_pipe("s3://bucket/s-1.tar") == "pipe:aws s3 cp --quiet s3://bucket/s-1.tar -"
    assert cloud_to_pipe("gs://bucket/s-1.tar") == "pipe:gcloud storage cat gs://bucket/s-1.tar"
    assert resolve_urls("s3://b/s-{0..1}.tar") == [f"pipe:aws s3 cp --quiet s3://b/s-{i}.tar -" for i in range(2)]


def test_brace_pattern_reads_every_sample_and_names_missing_shards(tmp_path):
    write_index_shards(tmp_path, shards=3, per_shard=4)
    urls = resolve_urls(str(tmp_path / "shard-{000000..000002}.tar"))
    assert_indices(one_pass(urls, 12), 12)
    with pytest.raises(DataError, match=r"2 of 5 shard\(s\) not found: .*shard-000003.tar.*shard-000004.tar"):
        resolve_urls(str(tmp_path / "shard-{000000..000004}.tar"))


def test_folder_without_manifest_reads_its_tars_in_name_order(tmp_path):
    write_index_shards(tmp_path / "d", shards=3, per_shard=2)
    assert resolve_urls(str(tmp_path / "d")) == [str(tmp_path / "d" / f"shard-{i:06d}.tar") for i in range(3)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty holds no manifest.json and no \\*.tar shards"):
        resolve_urls(str(tmp_path / "empty"))


def test_writer_folder_to_shards_to_loader_gives_back_every_image_and_label(tmp_path):
    """`hiresgan shards` output, named by its folder or its manifest, loads pixel-exact."""
    from trainer.shards import write_shards

    rng = np.random.default_rng(0)
    wanted = []
    for c, name in enumerate(("cat", "dog")):
        (tmp_path / "src" / name).mkdir(parents=True)
        for i in range(5):
            array = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(array).save(tmp_path / "src" / name / f"{i}.png")
            wanted.append((hashlib.sha256(array.transpose(2, 0, 1).tobytes()).hexdigest(), c))
    write_shards(str(tmp_path / "src"), str(tmp_path / "out"), resolution=8, labels="from-folder-names",
                 maxcount=3, progress=False)
    by_folder = resolve_urls(str(tmp_path / "out"))
    assert len(by_folder) == 4 and by_folder == resolve_urls(str(tmp_path / "out" / "manifest.json"))
    batch = one_pass(by_folder, 10, channels=3)
    got = sorted((hashlib.sha256(img.numpy().tobytes()).hexdigest(), int(lab))
                 for img, lab in zip(batch.images, batch.labels))
    assert got == sorted(wanted)
    assert find_manifest(str(tmp_path / "out"))["class_names"] == ["cat", "dog"]
    (tmp_path / "out" / "manifest.json").unlink()  # as if the writer had been interrupted
    with pytest.raises(DataError, match="unfinished `hiresgan shards` run"):
        resolve_urls(str(tmp_path / "out"))


def test_digits_manifest_and_bad_manifests(tmp_path, digit_shards):
    folder, _ = digit_shards
    assert resolve_urls(str(folder / "manifest.json")) == [str(folder / f"shard-{i:06d}.tar") for i in range(8)]
    with pytest.raises(DataError, match="never finished; rerun `hiresgan shards"):
        resolve_urls(str(tmp_path / "manifest.json"))
    (tmp_path / "manifest.json").write_text(json.dumps({"version": 7, "shards": [{"name": "a.tar"}]}))
    with pytest.raises(DataError, match="manifest version 7 is not 1"):
        resolve_urls(str(tmp_path))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable manifest"):
        resolve_urls(str(tmp_path))


def test_http_shards_and_http_manifest_stream(tmp_path, serve, digit_shards):
    write_index_shards(tmp_path, shards=3, per_shard=4)
    server = serve(tmp_path)
    assert_indices(one_pass(resolve_urls(server.base + "/shard-{000000..000002}.tar"), 12), 12)
    digits = serve(digit_shards[0])
    urls = resolve_urls(digits.base + "/manifest.json")
    assert urls == [f"{digits.base}/shard-{i:06d}.tar" for i in range(8)]
    assert one_pass(urls, 1797, resolution=32).images.shape == (1797, 1, 32, 32)
    assert find_manifest(digits.base + "/manifest.json")["num_classes"] == 10


def test_http_manifest_that_is_not_served_names_the_url(tmp_path, serve):
    server = serve(tmp_path)
    with pytest.raises(DataError, match=f"{server.base}/manifest.json: cannot read the manifest .*404"):
        resolve_urls(server.base + "/manifest.json")


def test_pipe_commands_stream_and_a_failing_command_is_named(tmp_path):
    write_index_shards(tmp_path, shards=2, per_shard=3)
    python = shlex.quote(sys.executable)
    cat = f"pipe:{python} -c 'import sys, shutil; shutil.copyfileobj(open(sys.argv[1], \"rb\"), sys.stdout.buffer)'"
    urls = resolve_urls(f"{cat} {tmp_path}/shard-{{000000..000001}}.tar")
    assert len(urls) == 2 and all(u.startswith("pipe:") for u in urls)
    assert_indices(one_pass(urls, 6), 6)
    bad = f"pipe:cat {tmp_path}/shard-000000.tar; echo 'AccessDenied: no credentials' >&2; exit 3"
    with pytest.raises(DataError, match=r"shard pipe:cat .*exited with status 3: AccessDenied"):
        one_pass([bad], 3, on_error="fail", retries=0)


def test_stock_webdataset_shardwriter_output_loads(tmp_path):
    """Shards written by webdataset's own ShardWriter (PIL images, int labels, jpg too)."""
    import webdataset as wds

    with wds.ShardWriter(str(tmp_path / "stock-%06d.tar"), maxcount=4, verbose=0) as sink:
        for i in range(10):
            image = Image.fromarray(np.full((8, 8), 20 * i, np.uint8))
            sink.write({"__key__": f"sample{i:04d}", "png" if i % 2 else "jpg": image, "cls": i % 3})
    urls = resolve_urls(str(tmp_path))
    assert len(urls) == 3
    batch = one_pass(urls, 10)
    seen = set()
    for key, image, label in zip(batch.keys, batch.images, batch.labels):
        i = int(key.rsplit("#sample", 1)[1])
        seen.add(i)
        assert int(label) == i % 3
        # png is exact; jpg (lossy) of a flat image lands within a level or two
        assert abs(int(image[0, 4, 4]) - 20 * i) <= (0 if i % 2 else 2), key
    assert seen == set(range(10))


def test_bad_data_keys_fail_validation_naming_the_key(tmp_path):
    base = ["data.urls=x.tar"]
    with pytest.raises(ConfigError, match="data.on_error.*valid choices: skip, fail"):
        load_config("configs/digits.yaml", base + ["data.on_error=ignore"])
    with pytest.raises(ConfigError, match="data.retries"):
        load_config("configs/digits.yaml", base + ["data.retries=-1"])
    with pytest.raises(ConfigError, match="data.timeout"):
        load_config("configs/digits.yaml", base + ["data.timeout=0"])


def test_samples_carry_their_shard_and_key(tmp_path):
    write_tar(tmp_path / "a.tar", [("x/0001", {"png": image_bytes(1), "cls": b"2"})])
    batch = one_pass([str(tmp_path / "a.tar")], 1)
    assert batch.keys == (f"{tmp_path / 'a.tar'}#x/0001",) and batch.skipped == 0
    assert torch.equal(batch.labels, torch.tensor([2]))


def test_preflight_names_a_bad_folder_and_a_config_the_shards_cannot_feed(tmp_path):
    from launch.preflight import prepare_data
    from trainer.shards import write_shards

    (tmp_path / "empty").mkdir()
    cfg = load_config("configs/digits.yaml", [f"data.urls={tmp_path / 'empty'}", "data.prepare=none"])
    with pytest.raises(ConfigError, match=r"config key 'data.urls': directory .*empty holds no manifest.json"):
        prepare_data(cfg)
    (tmp_path / "src").mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), i * 50, np.uint8)).save(tmp_path / "src" / f"{i}.png")
    write_shards(str(tmp_path / "src"), str(tmp_path / "out"), resolution=8, labels="none")
    cfg = load_config("configs/digits.yaml", [f"data.urls={tmp_path / 'out'}", "data.prepare=none",
                                              "data.num_classes=10"])
    with pytest.raises(ConfigError, match="'data.num_classes': is 10 but the shards carry no labels"):
        prepare_data(cfg)
    prepare_data(load_config("configs/digits.yaml", [f"data.urls={tmp_path / 'out'}", "data.prepare=none",
                                                     "data.num_classes=0"]))


def test_a_label_outside_num_classes_is_caught_naming_the_sample(tmp_path):
    shard = write_tar(tmp_path / "s.tar", [("k0", {"png": image_bytes(0), "cls": b"1"}),
                                           ("k1", {"png": image_bytes(1), "cls": b"12"})])
    with pytest.raises(DataError, match=r"s.tar, sample 'k1': .*label 12 is outside \[0, data.num_classes=10\)"):
        one_pass([str(shard)], 2, num_classes=10, on_error="fail")
    assert one_pass([str(shard)], 2, num_classes=10).skipped == 1


def test_prepare_digits_into_a_folder_spec(tmp_path):
    from launch.preflight import prepare_data

    cfg = load_config("configs/digits.yaml", [f"data.urls={tmp_path / 'digits'}", "data.prepare=digits"])
    prepare_data(cfg)
    assert resolve_urls(cfg.data.urls) == [str(tmp_path / "digits" / f"shard-{i:06d}.tar") for i in range(8)]
