"""`hiresgan shards --crop full|tiled|random`: pixels kept unresized, crops planned and seeded."""

import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from trainer.shards import ShardError, write_shards
from trainer.shards.cli import main as shards_main
from trainer.shards.crops import tile_starts


def _folder(root, sizes):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    arrays = {}
    for i, (w, h) in enumerate(sizes):
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / f"{i}.png")
        arrays[f"{i}.png"] = arr
    return arrays


def _read(out):
    samples = []
    for shard in sorted(out.glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for name in sorted(members):
            if name.endswith(".png"):
                import io

                image = np.asarray(Image.open(io.BytesIO(members[name])))
                samples.append((image, json.loads(members[name[:-4] + ".json"])))
    return samples


def test_tile_starts_cover_every_pixel():
    assert tile_starts(64, 32) == [0, 32]
    assert tile_starts(70, 32) == [0, 32, 38]
    assert tile_starts(31, 32) == []


def test_full_keeps_images_at_their_own_size(tmp_path):
    arrays = _folder(tmp_path / "src", [(40, 33), (50, 64)])
    write_shards(tmp_path / "src", tmp_path / "out", resolution=32, crop="full")
    got = _read(tmp_path / "out")
    assert [s[1]["path"] for s in got] == ["0.png", "1.png"]
    for image, meta in got:
        assert np.array_equal(image, arrays[meta["path"]])


def test_tiled_crops_are_exact_windows(tmp_path):
    arrays = _folder(tmp_path / "src", [(40, 33)])
    write_shards(tmp_path / "src", tmp_path / "out", resolution=16, crop="tiled")
    got = _read(tmp_path / "out")
    assert len(got) == 3 * 3  # x: 0, 16, 24; y: 0, 16, 17
    for image, meta in got:
        left, top, right, bottom = meta["crop"]
        assert image.shape == (16, 16, 3)
        assert np.array_equal(image, arrays["0.png"][top:bottom, left:right])


def test_random_crops_are_seeded(tmp_path):
    arrays = _folder(tmp_path / "src", [(40, 33), (64, 64)])
    write_shards(tmp_path / "src", tmp_path / "a", resolution=16, crop="random", crops_per_image=3, crop_seed=5)
    write_shards(tmp_path / "src", tmp_path / "b", resolution=16, crop="random", crops_per_image=3, crop_seed=5)
    write_shards(tmp_path / "src", tmp_path / "c", resolution=16, crop="random", crops_per_image=3, crop_seed=6)
    a, b, c = _read(tmp_path / "a"), _read(tmp_path / "b"), _read(tmp_path / "c")
    assert len(a) == 6 and [m["crop"] for _, m in a] == [m["crop"] for _, m in b]
    assert [m["crop"] for _, m in a] != [m["crop"] for _, m in c]
    for image, meta in a:
        left, top, right, bottom = meta["crop"]
        assert np.array_equal(image, arrays[meta["path"]][top:bottom, left:right])
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["num_samples"] == 6 and manifest["args"]["crops_per_image"] == 3


@pytest.mark.parametrize("crop", ["full", "tiled", "random"])
def test_images_smaller_than_the_crop_are_named(tmp_path, crop):
    _folder(tmp_path / "src", [(40, 33), (12, 50)])
    with pytest.raises(ShardError, match=r"1.png: 12x50"):
        write_shards(tmp_path / "src", tmp_path / "out", resolution=16, crop=crop)


def test_cli_crop_flags(tmp_path, capsys):
    _folder(tmp_path / "src", [(40, 33)])
    assert (
        shards_main(
            [
                str(tmp_path / "src"),
                str(tmp_path / "out"),
                "--resolution",
                "16",
                "--crop",
                "random",
                "--crops-per-image",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    assert len(_read(tmp_path / "out")) == 2
    assert (
        shards_main(
            [
                str(tmp_path / "src"),
                str(tmp_path / "o2"),
                "--resolution",
                "16",
                "--crop",
                "random",
                "--crops-per-image",
                "0",
            ]
        )
        == 2
    )
    assert "--crops-per-image 0" in capsys.readouterr().err
