"""`hiresgan eval --data` takes whatever data.urls takes (a shard folder, its manifest.json, a
pattern) and warns when the shards' resolution or channels differ from the generator's."""

import json

import numpy as np
from PIL import Image

from launch.cli import main
from trainer.shards import write_shards

ARGS = ["--metrics", "fid", "--num", "16", "--num-real", "64"]


def test_eval_data_takes_folders_and_manifests_like_data_urls(tiny_export, digit_shards, tmp_path, capsys):
    folder, pattern = digit_shards
    reports = []
    for data in (str(folder), str(folder / "manifest.json"), pattern):
        assert main(["eval", str(tiny_export), "--data", data, *ARGS, "--cache", str(tmp_path / "c")]) == 0, data
        out = capsys.readouterr()
        assert "warning" not in out.err  # digits: 32x32 gray, as the generator
        reports.append(json.loads(out.out))
    assert reports[0]["fid"] == reports[1]["fid"] == reports[2]["fid"]  # the same shards, however named
    assert main(["eval", str(tiny_export), "--data", str(tmp_path / "nowhere"), *ARGS]) == 2
    assert "--data" in capsys.readouterr().err


def test_eval_warns_when_the_data_is_not_what_the_generator_makes(tiny_export, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(src / f"{i}.png")
    write_shards(src, tmp_path / "rgb16", resolution=16)
    assert (
        main(
            [
                "eval",
                str(tiny_export),
                "--data",
                str(tmp_path / "rgb16"),
                *ARGS,
                "--num-real",
                "8",
                "--cache",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "warning: --data holds 16x16 images with 3 channel(s) but the generator makes 32x32 with 1" in err, err


def test_the_warning_also_reads_shards_without_a_manifest(tmp_path):
    from trainer.evaluation.stats import shape_warning

    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(src / f"{i}.png")
    write_shards(src, tmp_path / "rgb16", resolution=16)
    (tmp_path / "rgb16" / "manifest.json").unlink()
    pattern = str(tmp_path / "rgb16" / "shard-000000.tar")
    assert "16x16 images with 3 channel(s)" in shape_warning(pattern, resolution=32, channels=1)
    assert shape_warning(pattern, resolution=16, channels=3) == ""
