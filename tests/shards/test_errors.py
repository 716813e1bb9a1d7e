"""Bad input: a clear ShardError naming what is wrong, and nothing that looks finished."""

import glob
import json
import os

import numpy as np
import pytest
from PIL import Image
from shardkit import make_folder, png_bytes, write_idx

from trainer.shards import ShardError, write_shards


def no_output(out) -> bool:
    return not glob.glob(os.path.join(out, "shard-*.tar")) and not os.path.exists(os.path.join(out, "manifest.json"))


def fails(src, out, match, **kw):
    kw.setdefault("resolution", 8)
    with pytest.raises(ShardError, match=match) as e:
        write_shards(src, out, **kw)
    assert no_output(out)
    assert "\n" not in str(e.value)  # one line for the CLI
    return str(e.value)


def test_shard_error_is_a_value_error():
    assert issubclass(ShardError, ValueError)


def test_src_missing(tmp_path):
    fails(tmp_path / "nope", tmp_path / "out", r"nope.*does not exist")
    assert not (tmp_path / "out").exists()


def test_empty_folder(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "notes.txt").write_text("hi")
    fails(tmp_path / "src", tmp_path / "out", "holds no images")


def test_corrupt_images_are_listed_before_writing(tmp_path):
    make_folder(tmp_path / "src", classes=("a",), per_class=2)
    (tmp_path / "src" / "a" / "bad.png").write_bytes(b"not a png at all")
    (tmp_path / "src" / "a" / "empty.jpg").write_bytes(b"")
    msg = fails(tmp_path / "src", tmp_path / "out", "2 files under .* are not readable images", on_error="stop")
    assert "a/bad.png" in msg and "a/empty.jpg" in msg


def test_many_offenders_are_capped_at_20(tmp_path):
    (tmp_path / "src").mkdir()
    for i in range(25):
        (tmp_path / "src" / f"{i:02d}.png").write_bytes(b"junk")
    msg = fails(tmp_path / "src", tmp_path / "out", "25 files")
    assert "19.png" in msg and "20.png" not in msg and "and 5 more" in msg


def test_truncated_image_found_midway_removes_written_shards(tmp_path):
    make_folder(tmp_path / "src", classes=("a",), per_class=3)
    data = png_bytes(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (tmp_path / "src" / "a" / "z_truncated.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    msg = fails(tmp_path / "src", out, "images could not be converted", maxcount=1, on_error="stop")
    assert "a/z_truncated.png" in msg
    assert [p for p in os.listdir(out) if not p.startswith(".")] == []
    assert not glob.glob(str(out / ".*.partial"))


@pytest.mark.parametrize("workers", [1, 2])
def test_transparent_pixels_are_refused(tmp_path, workers):
    make_folder(tmp_path / "src", classes=("a",), per_class=1)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "src" / "a" / "see_through.png")
    msg = fails(tmp_path / "src", tmp_path / "out", "transparent pixels", workers=workers, on_error="stop")
    assert "a/see_through.png" in msg


def test_image_missing_from_labels_file(tmp_path):
    make_folder(tmp_path / "src", classes=("a",), per_class=3)
    (tmp_path / "labels.json").write_text(json.dumps({"a/0.png": 0}))
    msg = fails(tmp_path / "src", tmp_path / "out", "2 images have no entry", labels=str(tmp_path / "labels.json"))
    assert "a/1.png" in msg and "a/2.png" in msg


def test_bad_labels_values_and_missing_labels_file(tmp_path):
    make_folder(tmp_path / "src", classes=("a",), per_class=1)
    (tmp_path / "labels.json").write_text(json.dumps({"a/0.png": "cat"}))
    fails(tmp_path / "src", tmp_path / "out", "not integers", labels=str(tmp_path / "labels.json"))
    fails(tmp_path / "src", tmp_path / "out", "no such file", labels=str(tmp_path / "missing.json"))
    fails(tmp_path / "src", tmp_path / "out", "--labels 'cats'", labels="cats")


def test_loose_images_with_folder_labels(tmp_path):
    make_folder(tmp_path / "src", classes=("a",), per_class=1)
    (tmp_path / "src" / "loose.png").write_bytes(png_bytes(np.zeros((4, 4), np.uint8)))
    fails(tmp_path / "src", tmp_path / "out", "loose.png", labels="from-folder-names")


@pytest.mark.parametrize("res", [0, 2, 12, 100])
def test_resolution_not_power_of_two(tmp_path, res):
    make_folder(tmp_path / "src", classes=("a",), per_class=1)
    fails(tmp_path / "src", tmp_path / "out", "--resolution .* power of two", resolution=res)


def test_other_bad_flags(tmp_path):
    make_folder(tmp_path / "src", classes=("a",), per_class=1)
    fails(tmp_path / "src", tmp_path / "out", "--quality has no effect", quality=90)
    fails(tmp_path / "src", tmp_path / "out", "--quality 0", fmt="jpg", quality=0)
    fails(tmp_path / "src", tmp_path / "out", "--maxcount", maxcount=0)
    fails(tmp_path / "src", tmp_path / "out", "--channels", channels=2)


def test_out_not_writable(tmp_path):
    make_folder(tmp_path / "src", classes=("a",), per_class=1)
    (tmp_path / "file").write_text("x")
    fails(tmp_path / "src", tmp_path / "file" / "out", "OUT .* not writable")
    fails(tmp_path / "src", tmp_path / "file", "OUT .* not a folder")


def test_crop_none_refuses_non_square(tmp_path):
    make_folder(tmp_path / "src", classes=("a",), per_class=2, size=(12, 10))
    msg = fails(tmp_path / "src", tmp_path / "out", "not square", crop="none")
    assert "a/0.png: 12x10" in msg and "--crop center" in msg


def test_npz_problems(tmp_path):
    np.savez(tmp_path / "f.npz", images=np.zeros((2, 8, 8), np.float32))
    fails(tmp_path / "f.npz", tmp_path / "out", "'images' must be uint8")
    np.savez(tmp_path / "n.npz", pixels=np.zeros((2, 8, 8), np.uint8))
    fails(tmp_path / "n.npz", tmp_path / "out", "no array named 'images'")
    np.savez(tmp_path / "a.npz", images=np.zeros((2, 3, 8, 3), np.uint8))
    fails(tmp_path / "a.npz", tmp_path / "out", "ambiguous")
    np.savez(tmp_path / "l.npz", images=np.zeros((2, 8, 8), np.uint8), labels=np.array([0]))
    fails(tmp_path / "l.npz", tmp_path / "out", "expected 2 labels")
    np.savez(tmp_path / "o.npz", images=np.array([None, None], dtype=object))
    fails(tmp_path / "o.npz", tmp_path / "out", "pickle")
    (tmp_path / "z.npz").write_bytes(b"garbage")
    fails(tmp_path / "z.npz", tmp_path / "out", "not a readable .npz")


def test_idx_problems(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 4, 4), np.uint8), False)
    with open(tmp_path / "train-images-idx3-ubyte", "r+b") as f:
        f.truncate(30)
    fails(tmp_path / "train-images-idx3-ubyte", tmp_path / "out", "truncated or corrupt")
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 4, 4), np.uint8), False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 4, 4), np.uint8), False)
    fails(tmp_path, tmp_path / "out", "exactly one")
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((2,), np.uint8), False)
    fails(tmp_path / "train-images-idx3-ubyte", tmp_path / "out", "expected 3 labels")
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((3,), np.uint8), False)
    fails(tmp_path / "train-images-idx3-ubyte", tmp_path / "out", "array source", labels="from-folder-names")


def test_unknown_source_file(tmp_path):
    (tmp_path / "data.csv").write_text("a,b")
    fails(tmp_path / "data.csv", tmp_path / "out", "not a folder, .zip")


def test_error_keeps_earlier_finished_output_untouched(tmp_path):
    make_folder(tmp_path / "src", classes=("a",), per_class=2)
    out = tmp_path / "out"
    write_shards(tmp_path / "src", out, resolution=8)
    before = sorted(os.listdir(out))
    with pytest.raises(ShardError):
        write_shards(tmp_path / "src", out, resolution=6)
    assert sorted(os.listdir(out)) == before


def test_zip_problems(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "d.zip", "w") as zf:
        zf.writestr("ok.png", png_bytes(np.zeros((4, 4), np.uint8)))
        zf.writestr("broken.png", b"nope")
    msg = fails(tmp_path / "d.zip", tmp_path / "out", "1 files under .* not readable", on_error="stop")
    assert "broken.png" in msg
    (tmp_path / "fake.zip").write_bytes(b"not a zip")
    fails(tmp_path / "fake.zip", tmp_path / "out", "not a readable zip")
