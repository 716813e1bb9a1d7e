"""Scraped folders as users have them: every format Pillow reads (.tif, .gif, ...), a truncated
JPEG among good images (skipped, counted and listed by default; --on-error stop stops), an OUT
that already holds a dataset (refused without --overwrite), and a warning when the shards are
fewer than the loader slots of the config they are for (--for-config)."""

import io
import json
import os

import numpy as np
from PIL import Image
from shardkit import make_folder

from launch.cli import main
from trainer.shards import write_shards


def jpeg_bytes(seed=0):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_tif_gif_and_other_pillow_formats_are_read(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    pixels = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(src / "a.tif")
    Image.fromarray(pixels).convert("P").save(src / "b.gif")  # palette
    Image.fromarray(pixels).save(src / "c.ppm")
    Image.fromarray(pixels).save(src / "d.tga")
    manifest = write_shards(src, tmp_path / "out", resolution=16)
    assert manifest.num_samples == 4 and not manifest.skipped


def test_a_truncated_jpeg_is_skipped_counted_and_listed(tmp_path, capsys):
    src = tmp_path / "src"
    make_folder(src, classes=("a",), per_class=4)
    (src / "a" / "cut.jpg").write_bytes(jpeg_bytes()[:400])  # header fine, pixels cut off
    (src / "a" / "junk.png").write_bytes(b"not an image")  # unreadable at the scan
    out = tmp_path / "out"
    assert main(["shards", str(src), str(out), "--resolution", "8", "--maxcount", "2", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "skipped a/cut.jpg" in err and "skipped a/junk.png" in err and "skipped 2 image(s)" in err, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_samples"] == 4 and len(manifest["skipped"]) == 2
    assert sum(s["count"] for s in manifest["shards"]) == 4
    assert (out / "skipped.txt").read_text().count("\n") == 2
    # A rerun reuses the finished shards and still lists the skips (they live in the shard records).
    before = {name: (out / name).stat().st_mtime_ns for name in os.listdir(out) if name.endswith(".tar")}
    again = write_shards(src, out, resolution=8, maxcount=2, overwrite=True)
    assert again.num_samples == 4 and sorted(again.skipped) == sorted(manifest["skipped"])
    assert {name: (out / name).stat().st_mtime_ns for name in before} == before
    # --on-error stop: the first failures stop the write, nothing is left that looks finished.
    assert main(["shards", str(src), str(tmp_path / "strict"), "--resolution", "8", "--on-error", "stop"]) == 2
    assert "a/junk.png" in capsys.readouterr().err and not (tmp_path / "strict" / "manifest.json").exists()


def test_an_out_folder_with_a_dataset_is_refused_without_overwrite(tmp_path, capsys):
    src = tmp_path / "src"
    make_folder(src, classes=("a",), per_class=2)
    out = tmp_path / "out"
    assert main(["shards", str(src), str(out), "--resolution", "8", "--quiet"]) == 0
    manifest = (out / "manifest.json").read_bytes()
    capsys.readouterr()
    assert main(["shards", str(src), str(out), "--resolution", "16", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "not empty" in err
    assert (out / "manifest.json").read_bytes() == manifest  # untouched
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["shards", str(src), str(other), "--resolution", "8", "--quiet"]) == 2
    assert main(["shards", str(src), str(out), "--resolution", "16", "--quiet", "--overwrite"]) == 0
    assert json.loads((out / "manifest.json").read_text())["resolution"] == 16


def test_fewer_shards_than_loader_slots_of_the_config_warns(tmp_path, capsys):
    src = tmp_path / "src"
    make_folder(src, classes=("a",), per_class=6)
    # configs/digits.yaml: 2 ranks x 1 loader worker = 2 slots per node.
    assert (
        main(
            [
                "shards",
                str(src),
                str(tmp_path / "one"),
                "--resolution",
                "8",
                "--quiet",
                "--for-config",
                "configs/digits.yaml",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "warning: 1 shard(s) for 2 rank(s) x 1 loader worker(s) = 2 loader slots" in err, err
    assert "--maxcount 3" in err
    assert (
        main(
            [
                "shards",
                str(src),
                str(tmp_path / "six"),
                "--resolution",
                "8",
                "--quiet",
                "--maxcount",
                "1",
                "--for-config",
                "configs/digits.yaml",
                "--nodes",
                "2",
            ]
        )
        == 0
    )
    assert "warning" not in capsys.readouterr().err  # 6 shards >= 2 nodes x 2 ranks x 1 worker
