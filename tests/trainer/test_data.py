"""Embedded digits -> shards -> the streaming loader: complete, disjoint, resumable."""

import hashlib
import itertools
import json
import tarfile

import numpy as np
import pytest
import torch

from trainer.data.digits import load_digit_arrays, write_digit_shards
from trainer.data.sources import expand_urls
from trainer.data.stream import ShardStream, StreamSpec, make_loader


def spec(pattern, **kw):
    base = dict(
        urls=tuple(expand_urls(pattern)),
        seed=0,
        rank=0,
        world_size=1,
        batch_size=8,
        resolution=32,
        channels=1,
        labeled=True,
        xflip=False,
        shuffle_buffer=64,
    )
    base.update(kw)
    return StreamSpec(**base)


def test_digit_shards_hold_every_digit_with_its_label(digit_shards):
    folder, pattern = digit_shards
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["samples"] == 1797 and manifest["num_classes"] == 10
    images, labels = load_digit_arrays()
    wanted = sorted((hashlib.sha256(im.tobytes()).hexdigest(), int(lab)) for im, lab in zip(images, labels))
    stream = ShardStream(spec(pattern, shuffle_buffer=1))
    got = []
    for sample in itertools.islice(stream.raw_stream(0, 1), 1797):
        from trainer.data.stream import decode_image, decode_label

        got.append((hashlib.sha256(decode_image(sample, 32, 1)[0].tobytes()).hexdigest(), decode_label(sample)))
    assert sorted(got) == wanted
    for entry in manifest["shards"]:
        assert hashlib.sha256((folder / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]


def test_digit_shards_are_byte_identical_when_rewritten(tmp_path, digit_shards):
    folder, _ = digit_shards
    write_digit_shards(tmp_path / "again")
    for shard in sorted(folder.glob("shard-*.tar")):
        assert (tmp_path / "again" / shard.name).read_bytes() == shard.read_bytes()


@pytest.mark.parametrize("world_size, workers", [(2, 2), (2, 1), (3, 4)])
def test_slots_are_disjoint_and_cover_a_pass(digit_shards, world_size, workers):
    """Across ranks x workers no sample repeats within a pass; 12 slots > 8 shards works too."""
    _, pattern = digit_shards
    slots = world_size * workers
    keys = []
    for slot in range(slots):
        stream = ShardStream(spec(pattern, world_size=world_size))
        # One pass of this slot: everything it reads in epoch 0.
        from trainer.data.reader import ErrorPolicy
        from trainer.data.stream import _raw_samples, _slot_shards

        urls, stride, offset = _slot_shards(stream.spec, slot, slots, 0)
        keys += [s["__key__"] for s in itertools.islice(_raw_samples(urls, ErrorPolicy()), offset, None, stride)]
    assert len(keys) == len(set(keys)) == 1797


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_stream_continues_exactly(digit_shards, workers):
    _, pattern = digit_shards
    s = spec(pattern, xflip=True)
    full = make_loader(s, workers)
    batches = [next(full) for _ in range(12)]
    resumed = make_loader(StreamSpec(**{**s.__dict__, "start_batch": 7}), workers)
    for i in range(7, 12):
        b = next(resumed)
        assert torch.equal(b.images, batches[i].images) and torch.equal(b.labels, batches[i].labels)


def test_batches_have_the_requested_shape_and_resolution(digit_shards):
    _, pattern = digit_shards
    batch = next(make_loader(spec(pattern, resolution=16), 0))
    assert batch.images.shape == (8, 1, 16, 16) and batch.images.dtype == torch.uint8
    assert batch.labels.shape == (8,) and 0 <= int(batch.labels.min()) and int(batch.labels.max()) <= 9


def test_corrupt_image_is_skipped_and_counted(tmp_path):
    import io

    from PIL import Image

    path = tmp_path / "shard-000000.tar"
    with tarfile.open(path, "w") as tar:
        for i in range(6):
            buf = io.BytesIO()
            Image.fromarray(np.full((32, 32), i * 40, np.uint8)).save(buf, format="PNG")
            payload = buf.getvalue() if i != 2 else buf.getvalue()[:20]  # a truncated PNG
            for name, data in ((f"{i:04d}.png", payload), (f"{i:04d}.cls", b"1")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    batch = next(make_loader(spec(str(path), batch_size=5, shuffle_buffer=1), 0))
    assert batch.skipped == 1
    # The unreadable sample's place goes to a copy of a readable one of the same batch, so every
    # batch takes exactly batch_size stream samples and resume stays exact (tests/data).
    assert sorted(int(v) for v in batch.images[:, 0, 0, 0]) == [0, 40, 120, 120, 160]
