"""Folder -> shards -> stock webdataset reader: every image and label comes back."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from shardkit import digest, make_folder, read_back, resized

from trainer.shards import read_manifest, write_shards


def test_folder_with_class_folders_round_trips(tmp_path):
    arrays = make_folder(tmp_path / "src", classes=("b_dog", "a_cat"), per_class=3, size=(12, 10))
    out = tmp_path / "out"
    m = write_shards(tmp_path / "src", out, resolution=8, labels="from-folder-names", maxcount=4)

    assert m.num_samples == 6 and m.channels == 3 and m.format == "png"
    assert m.class_names == ["a_cat", "b_dog"] and m.num_classes == 2
    assert [s.count for s in m.shards] == [4, 2]
    assert m.urls == "shard-{000000..000001}.tar"
    assert read_manifest(out) == m

    samples = read_back(out)
    keys = sorted(arrays)  # sorted relative paths define the sample order
    assert [s[0] for s in samples] == ["%08d" % i for i in range(6)]
    for (_key, img, cls, meta), rel in zip(samples, keys):
        assert meta == {"path": rel}
        assert cls == m.class_names.index(rel.split("/")[0])
        assert img.size == (8, 8) and img.mode == "RGB"
        # PNG is lossless: the pixels are exactly the centre-crop + Lanczos of the source
        assert digest(img) == digest(resized(arrays[rel], 8))


def test_grayscale_stays_one_channel_and_upscales(tmp_path):
    make_folder(tmp_path / "src", classes=("x",), per_class=2, size=(8, 8), mode="L")
    m = write_shards(tmp_path / "src", tmp_path / "out", resolution=32, labels="none")
    assert m.channels == 1 and m.num_classes == 0 and m.class_names is None and not m.labelled
    samples = read_back(tmp_path / "out")
    assert all(img.mode == "L" and img.size == (32, 32) and cls is None for _, img, cls, _ in samples)


def test_mixed_gray_and_color_auto_gives_rgb_and_channels_1_gives_gray(tmp_path):
    src = tmp_path / "src"
    make_folder(src, classes=("g",), per_class=1, size=(8, 8), mode="L")
    make_folder(src, classes=("c",), per_class=1, size=(8, 8), mode="RGB")
    assert write_shards(src, tmp_path / "a", resolution=8).channels == 3
    m = write_shards(src, tmp_path / "b", resolution=8, channels=1)
    assert m.channels == 1
    assert {img.mode for _, img, _, _ in read_back(tmp_path / "b")} == {"L"}


def test_crop_none_keeps_whole_square_image(tmp_path):
    make_folder(tmp_path / "src", classes=("x",), per_class=2, size=(16, 16))
    write_shards(tmp_path / "src", tmp_path / "out", resolution=8, crop="none")
    assert len(read_back(tmp_path / "out")) == 2


def test_opaque_alpha_is_dropped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rgba = np.full((8, 8, 4), 255, np.uint8)
    rgba[..., :3] = 40
    Image.fromarray(rgba, "RGBA").save(src / "a.png")
    write_shards(src, tmp_path / "out", resolution=8)
    ((_, img, _, _),) = read_back(tmp_path / "out")
    assert img.mode == "RGB" and np.asarray(img).max() == 40


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_jpeg_and_webp_decode(tmp_path, fmt):
    make_folder(tmp_path / "src", classes=("x",), per_class=3, size=(16, 16))
    m = write_shards(tmp_path / "src", tmp_path / "out", resolution=16, fmt=fmt)
    assert m.format == fmt
    samples = read_back(tmp_path / "out", decode="rgb8")
    assert len(samples) == 3 and all(img.shape == (16, 16, 3) for _, img, _, _ in samples)


def test_webp_quality_100_is_lossless(tmp_path):
    arrays = make_folder(tmp_path / "src", classes=("x",), per_class=2, size=(8, 8))
    write_shards(tmp_path / "src", tmp_path / "out", resolution=8, fmt="webp")
    for (_, img, _, _meta), rel in zip(read_back(tmp_path / "out"), sorted(arrays)):
        assert np.array_equal(np.asarray(img.convert("RGB")), arrays[rel])


def test_maxsize_splits_shards_and_each_stays_under_it(tmp_path):
    make_folder(tmp_path / "src", classes=("x",), per_class=6, size=(32, 32))
    m = write_shards(tmp_path / "src", tmp_path / "out", resolution=32, maxsize=30_000)
    assert len(m.shards) > 1 and sum(s.count for s in m.shards) == 6
    for s in m.shards:
        assert s.bytes <= 30_000 and os.path.getsize(tmp_path / "out" / s.name) == s.bytes
    assert [s.first for s in m.shards] == [sum(x.count for x in m.shards[:i]) for i in range(len(m.shards))]
    assert len(read_back(tmp_path / "out")) == 6


def test_manifest_is_plain_json(tmp_path):
    make_folder(tmp_path / "src", classes=("x",), per_class=1, size=(8, 8))
    write_shards(tmp_path / "src", tmp_path / "out", resolution=8)
    data = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert data["version"] == 1 and data["urls"] == "shard-000000.tar"
    assert set(data["args"]) == {"resolution", "crop", "format", "quality", "labels", "maxcount", "maxsize", "channels"}


def test_sample_larger_than_maxsize_gets_its_own_shard(tmp_path):
    make_folder(tmp_path / "src", classes=("x",), per_class=3, size=(8, 8))
    m = write_shards(tmp_path / "src", tmp_path / "out", resolution=8, maxsize=1)
    assert [s.count for s in m.shards] == [1, 1, 1]


def test_16bit_gray_is_scaled_and_bmp_is_read(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    arr16 = np.full((8, 8), 65535, np.uint16)
    arr16[:4] = 257 * 100
    Image.fromarray(arr16).save(src / "a16.png")
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(src / "b.bmp")
    m = write_shards(src, tmp_path / "out", resolution=8)
    assert m.channels == 1
    (_, a, _, _), (_, b, _, _) = read_back(tmp_path / "out")
    assert a.mode == "L" and np.asarray(a)[0, 0] == 100 and np.asarray(a)[7, 7] == 255
    assert np.asarray(b).max() == 7


def test_exif_orientation_is_applied(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    arr = np.zeros((4, 4), np.uint8)
    arr[0, 0] = 255
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img.save(src / "a.png", exif=exif)
    write_shards(src, tmp_path / "out", resolution=4)
    ((_, out, _, _),) = read_back(tmp_path / "out")
    assert np.asarray(out)[0, 3] == 255 and np.asarray(out)[0, 0] == 0
