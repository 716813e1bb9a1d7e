"""Broken data, for real: truncated and garbage tars, a truncated JPEG, a missing label, and an
HTTP server that fails or cuts off shards. Skip counts and warns once per shard; fail names the
shard and the key; remote shards are retried without duplicating or losing a sample."""

import logging
import tarfile

import pytest
import torch
from datakit import image_bytes, index_of, write_index_shards, write_tar
from prometheus_client import CollectorRegistry

from trainer.data.stream import StreamSpec, make_loader
from trainer.data.reader import ErrorPolicy, read_shard
from trainer.data.sources import DataError
from trainer.telemetry.prometheus import TrainingMetrics


def one_pass(urls, total, **kw):
    spec = StreamSpec(urls=tuple(map(str, urls)), seed=0, rank=0, world_size=1, batch_size=total, resolution=8,
                      channels=1, labeled=True, xflip=False, shuffle_buffer=1, **kw)
    return next(make_loader(spec, 0))


def indices(batch):
    return sorted(index_of(img.numpy()) for img in batch.images)


def test_truncated_tar_keeps_its_good_samples_counts_and_warns_once(tmp_path, caplog):
    good, bad = write_index_shards(tmp_path, shards=2, per_shard=10)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # cut inside a member: the tail of the shard is lost
    with caplog.at_level(logging.WARNING):
        samples = list(read_shard(str(bad), policy := ErrorPolicy("skip")))
    assert 3 <= len(samples) < 10 and policy.skipped == 1
    assert [s["__key__"] for s in samples] == [f"{i:06d}" for i in range(10, 10 + len(samples))]
    assert sum("shard-000001.tar" in r.getMessage() for r in caplog.records) == 1
    # Through the stream: the good shard whole, the truncated one's readable head, one skip counted.
    batch = one_pass([good, bad], 10 + len(samples))
    assert indices(batch) == list(range(10 + len(samples))) and batch.skipped == 1


def test_a_tar_cut_exactly_between_members_is_not_taken_for_whole(tmp_path):
    """tarfile itself ends quietly there; the missing end-of-archive block gives it away."""
    (shard,) = write_index_shards(tmp_path, shards=1, per_shard=10)
    with tarfile.open(shard) as tar:
        member = tar.getmembers()[9]  # 000004.cls
        cut = member.offset_data + -(-member.size // 512) * 512
    shard.write_bytes(shard.read_bytes()[:cut])
    policy = ErrorPolicy("skip")
    assert [s["__key__"] for s in read_shard(str(shard), policy)] == [f"{i:06d}" for i in range(4)]
    assert policy.skipped == 1  # 000004 is held back: a cut can also fall between its members


def test_truncated_tar_with_fail_policy_names_the_shard(tmp_path):
    (shard,) = write_index_shards(tmp_path, shards=1, per_shard=10)
    shard.write_bytes(shard.read_bytes()[:3000])
    with pytest.raises(DataError, match=r"shard .*shard-000000.tar: unreadable: TarDamage: tar ends inside .*'00000\d.png' .*\(truncated\).*"
                                        r"data.on_error=skip"):
        one_pass([shard], 10, on_error="fail")


def test_a_file_that_is_no_tar_is_skipped_or_named(tmp_path):
    (good,) = write_index_shards(tmp_path, shards=1, per_shard=4)
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"<html>not found</html>" * 40)
    batch = one_pass([junk, good], 4)
    assert indices(batch) == [0, 1, 2, 3] and batch.skipped == 1
    with pytest.raises(DataError, match="junk.tar: unreadable"):
        one_pass([junk, good], 4, on_error="fail")


def test_a_slot_whose_shards_are_all_broken_stops_with_a_clear_error(tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\0garbage" * 100)
    with pytest.raises(DataError, match="read no samples from 1 shard.*junk.tar.*empty or unreadable"):
        one_pass([junk], 2)


def test_truncated_jpeg_and_missing_label_are_skipped_counted_or_named(tmp_path):
    jpeg = image_bytes(1, "JPEG")
    shard = write_tar(tmp_path / "s.tar", [
        ("a0", {"png": image_bytes(0), "cls": b"0"}),
        ("a1", {"jpg": jpeg[: len(jpeg) // 2], "cls": b"1"}),  # truncated JPEG
        ("a2", {"png": image_bytes(2)}),  # no label
        ("a3", {"png": image_bytes(3), "cls": b"three"}),  # label that is no integer
        ("a4", {"png": image_bytes(4), "cls": b"1"}),
    ])
    batch = one_pass([shard], 5)
    # the three unreadable samples' places go to copies of the two readable ones (exact resume)
    assert set(indices(batch)) == {0, 4} and batch.skipped == 3
    assert sorted(batch.keys) == sorted(f"{shard}#a{i}" for i in (0, 0, 4, 4, 4))
    with pytest.raises(DataError, match=r"(?i)s.tar, sample 'a1': .*truncated"):
        one_pass([shard], 2, on_error="fail")
    shard2 = write_tar(tmp_path / "t.tar", [("b0", {"png": image_bytes(0)}), ("b1", {"png": image_bytes(1), "cls": b"1"})])
    with pytest.raises(DataError, match=r"t.tar, sample 'b0': .*has no 'cls' label; set data.num_classes=0"):
        one_pass([shard2], 1, on_error="fail")


def test_resume_stays_exact_past_unreadable_samples(tmp_path):
    from trainer.data.stream import StreamSpec

    samples = [(f"k{i:03d}", {"png": image_bytes(i) if i % 7 != 3 else b"broken", "cls": b"1"}) for i in range(40)]
    shard = write_tar(tmp_path / "s.tar", samples)
    base = dict(urls=(str(shard),), seed=1, rank=0, world_size=1, batch_size=4, resolution=8, channels=1,
                labeled=True, xflip=True, shuffle_buffer=8)
    full = make_loader(StreamSpec(**base), 0)
    batches = [next(full) for _ in range(14)]  # more than one pass: epoch 2 reshuffles
    assert sum(b.skipped for b in batches) >= 6
    resumed = make_loader(StreamSpec(**base, start_batch=9), 0)
    for expected in batches[9:]:
        got = next(resumed)
        assert got.keys == expected.keys and torch.equal(got.images, expected.images)


def test_skipped_samples_reach_the_prometheus_counter(tmp_path):
    jpeg = image_bytes(1, "JPEG")
    shard = write_tar(tmp_path / "s.tar", [("a0", {"jpg": jpeg[:100], "cls": b"0"}),
                                           ("a1", {"png": image_bytes(1), "cls": b"1"})])
    batch = one_pass([shard], 1)
    registry = CollectorRegistry()
    metrics = TrainingMetrics(registry, identity={"job": "t", "rank": "0"})
    metrics.observe_step(images=1, step_seconds=0.1, data_wait_seconds=0.0, skipped=batch.skipped)
    value = registry.get_sample_value("hiresgan_corrupt_samples_total",
                                      {"job": "t", "rank": "0", **{k: "" for k in metrics.identity if k not in ("job", "rank")}})
    assert value == 1.0


def test_http_500s_are_retried_and_every_sample_arrives_once(tmp_path, serve):
    write_index_shards(tmp_path, shards=2, per_shard=5)
    server = serve(tmp_path)
    server.faults["/shard-000001.tar"] = ["500", "500"]
    urls = [f"{server.base}/shard-{i:06d}.tar" for i in range(2)]
    batch = one_pass(urls, 10, retries=2)
    assert indices(batch) == list(range(10)) and batch.skipped == 0
    assert server.requests.count("/shard-000001.tar") == 3


def test_a_shard_cut_off_mid_stream_resumes_without_duplicates(tmp_path, serve):
    write_index_shards(tmp_path, shards=1, per_shard=20)
    server = serve(tmp_path)
    server.faults["/shard-000000.tar"] = ["cut"]
    samples = list(read_shard(f"{server.base}/shard-000000.tar", policy := ErrorPolicy("fail"), retry_wait=0.01))
    assert [s["__key__"] for s in samples] == [f"{i:06d}" for i in range(20)] and policy.skipped == 0
    assert server.requests.count("/shard-000000.tar") == 2


def test_retries_run_out_with_a_message_naming_url_and_attempts(tmp_path, serve):
    write_index_shards(tmp_path, shards=1, per_shard=4)
    server = serve(tmp_path)
    server.faults["/shard-000000.tar"] = ["cut", "cut", "cut"]
    url = f"{server.base}/shard-000000.tar"
    with pytest.raises(DataError, match=rf"shard {url}: unreadable after 3 attempts"):
        list(read_shard(url, ErrorPolicy("fail"), retries=2, retry_wait=0.01))


def test_http_404_is_not_retried(tmp_path, serve):
    server = serve(tmp_path)
    url = f"{server.base}/missing.tar"
    with pytest.raises(DataError, match=rf"shard {url}: cannot open \(HTTP 404"):
        list(read_shard(url, ErrorPolicy("fail"), retries=3, retry_wait=0.01))
    assert server.requests == ["/missing.tar"]


def test_a_resolution_change_mid_run_keeps_the_sample_order(tmp_path):
    """Progressive growing: the loader replaced at batch 5 with a new resolution continues the
    unbroken stream's samples (and flips), only resized."""
    from trainer.data.stream import loader_at

    write_index_shards(tmp_path, shards=4, per_shard=10)
    urls = tuple(str(p) for p in sorted(tmp_path.glob("shard-*.tar")))
    spec = StreamSpec(urls=urls, seed=2, rank=0, world_size=1, batch_size=4, resolution=8, channels=1,
                      labeled=True, xflip=True, shuffle_buffer=8)
    unbroken = make_loader(spec, 0)
    expected = [next(unbroken) for _ in range(9)]
    grown = loader_at(spec, 0, batch=5, resolution=16)
    def marked_left(images):  # the index pixels sit in the top-left corner unless flipped
        row = (images[:, 0, 0, :].float() - 128).abs()
        half = row.shape[1] // 2
        return (row[:, :half].sum(1) > row[:, half:].sum(1)).tolist()

    flips = set()
    for want in expected[5:]:
        got = next(grown)
        assert got.keys == want.keys and torch.equal(got.labels, want.labels)
        assert got.images.shape == (4, 1, 16, 16)
        assert marked_left(got.images) == marked_left(want.images)
        flips.update(marked_left(want.images))
    assert flips == {True, False}  # both flipped and unflipped images were compared
