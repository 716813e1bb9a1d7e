"""Zip, IDX (plain and gzipped) and npz (NHWC / NCHW) sources, and labels files."""

import json
import zipfile

import numpy as np
import pytest
from shardkit import digest, png_bytes, read_back, resized, write_idx

from trainer.shards import write_shards


def test_zip_source_sorted_members_and_folder_labels(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {f"{c}/{i}.png": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for c in ("b", "a") for i in range(2)}
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as zf:
        for name in ["b/1.png", "a/0.png", "b/0.png", "a/1.png"]:  # unsorted on purpose
            zf.writestr(name, png_bytes(arrays[name]))
        zf.writestr("__MACOSX/a/._0.png", b"junk")
        zf.writestr("readme.txt", b"not an image")
    m = write_shards(tmp_path / "d.zip", tmp_path / "out", resolution=8, labels="from-folder-names")
    assert m.class_names == ["a", "b"]
    samples = read_back(tmp_path / "out")
    assert [meta["path"] for _, _, _, meta in samples] == sorted(arrays)
    for _, img, cls, meta in samples:
        assert digest(img) == digest(arrays[meta["path"]])
        assert cls == ["a", "b"].index(meta["path"][0])


@pytest.mark.parametrize("gz", [False, True])
def test_idx_pair_gzipped_or_not(tmp_path, gz):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (5, 8, 8), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    # SRC as the folder, and as the images file itself
    for i, src in enumerate([tmp_path, tmp_path / f"train-images-idx3-ubyte{suffix}"]):
        out = tmp_path / f"out{i}"
        m = write_shards(src, out, resolution=8)
        assert m.channels == 1 and m.num_classes == 6 and m.class_names is None
        samples = read_back(out)
        assert [cls for _, _, cls, _ in samples] == labels.tolist()
        assert [digest(img) for _, img, _, _ in samples] == [digest(a) for a in images]
        assert samples[2][3] == {"path": f"train-images-idx3-ubyte{suffix}", "index": 2}


def test_idx_upscales_small_digits(tmp_path):
    images = np.random.default_rng(3).integers(0, 256, (2, 8, 8), dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images, False)
    write_shards(tmp_path / "t10k-images-idx3-ubyte", tmp_path / "out", resolution=32, labels="none")
    samples = read_back(tmp_path / "out")
    assert [digest(img) for _, img, _, _ in samples] == [digest(resized(a, 32)) for a in images]


@pytest.mark.parametrize("layout", ["NHWC", "NCHW", "NHW"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(4)
    nhwc = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    if layout == "NHWC":
        images = nhwc
    elif layout == "NCHW":
        images = nhwc.transpose(0, 3, 1, 2)
    else:
        nhwc = nhwc[..., 0]
        images = nhwc
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([0, 1, 2, 1]))
    m = write_shards(tmp_path / "d.npz", tmp_path / "out", resolution=8)
    assert m.channels == (1 if layout == "NHW" else 3) and m.num_classes == 3
    samples = read_back(tmp_path / "out")
    assert [digest(img) for _, img, _, _ in samples] == [digest(a) for a in nhwc]
    assert [cls for _, _, cls, _ in samples] == [0, 1, 2, 1]


def test_npz_without_labels_and_labels_none(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 4, 4), np.uint8))
    m = write_shards(tmp_path / "d.npz", tmp_path / "out", resolution=4)
    assert m.num_classes == 0 and all(cls is None for _, _, cls, _ in read_back(tmp_path / "out"))


@pytest.mark.parametrize("style", ["mapping", "stylegan"])
def test_labels_json_file(tmp_path, style):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("x.png", "y.png"):
        (src / name).write_bytes(png_bytes(np.zeros((4, 4), np.uint8)))
    labels = {"x.png": 7, "./y.png": 2}
    data = labels if style == "mapping" else {"labels": [[k, v] for k, v in labels.items()]}
    (tmp_path / "labels.json").write_text(json.dumps(data))
    m = write_shards(src, tmp_path / "out", resolution=4, labels=str(tmp_path / "labels.json"))
    assert m.num_classes == 8
    assert [cls for _, _, cls, _ in read_back(tmp_path / "out")] == [7, 2]
