"""`hiresgan sample` composites: class grid, style mixing, interpolation GIF."""

import pytest
import torch
from PIL import Image

from launch.cli import main
from trainer.export import load_generator
from trainer.sampling.latents import generate, interpolation_frames, style_mixing_grid


def test_style_mixing_grid_takes_coarse_styles_from_columns(tiny_export):
    G, _ = load_generator(tiny_export)
    rows, cols = [1, 2], [3, 4, 5]
    grid = style_mixing_grid(G, rows, cols, class_index=2, cutoff=0)
    assert grid.shape[0] == (len(rows) + 1) * (len(cols) + 1)
    plain_rows, plain_cols = generate(G, rows, 2), generate(G, cols, 2)
    torch.testing.assert_close(grid[1:4], plain_cols, atol=1e-5, rtol=0)
    torch.testing.assert_close(grid[4], plain_rows[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(grid[5], plain_rows[0], atol=1e-5, rtol=0)  # cutoff 0: all styles from the row
    everything = style_mixing_grid(G, rows, cols, class_index=2, cutoff=G.num_ws)
    torch.testing.assert_close(everything[9:12], plain_cols, atol=1e-5, rtol=0)  # all styles from the column
    partial = style_mixing_grid(G, rows, cols, class_index=2, cutoff=2)
    assert not torch.allclose(partial[5], plain_rows[0]) and not torch.allclose(partial[5], plain_cols[0])
    with pytest.raises(ValueError, match="--mix-cutoff"):
        style_mixing_grid(G, rows, cols, class_index=2, cutoff=99)


def test_interpolation_starts_at_each_seed(tiny_export):
    G, _ = load_generator(tiny_export)
    frames = interpolation_frames(G, [0, 1], class_index=3, frames=4)
    assert frames.shape[0] == 8
    torch.testing.assert_close(frames[0], generate(G, [0], 3)[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(frames[4], generate(G, [1], 3)[0], atol=1e-5, rtol=0)


def test_sample_cli_grid_style_mix_and_gif(tiny_export, tmp_path, capsys):
    assert main(["sample", str(tiny_export), "--seeds", "0-2", "--grid", "--out", str(tmp_path)]) == 0
    assert Image.open(tmp_path / "grid.png").size == (3 * 32, 10 * 32)  # a row per class
    assert (
        main(
            ["sample", str(tiny_export), "--seeds", "0-1", "--style-mix", "5-7", "--class", "1", "--out", str(tmp_path)]
        )
        == 0
    )
    assert Image.open(tmp_path / "style-mixing.png").size == (4 * 32, 3 * 32)
    gif = tmp_path / "loop.gif"
    assert (
        main(
            [
                "sample",
                str(tiny_export),
                "--seeds",
                "0,1,2",
                "--class",
                "1",
                "--video",
                str(gif),
                "--frames",
                "3",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert Image.open(gif).n_frames == 9
    assert (
        main(
            [
                "sample",
                str(tiny_export),
                "--seeds",
                "0,1",
                "--video",
                str(tmp_path / "x.mp4"),
                "--class",
                "1",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "only .gif" in capsys.readouterr().err and not (tmp_path / "x.mp4").exists()
    assert main(["sample", str(tiny_export), "--seeds", "0,1", "--style-mix", "2", "--out", str(tmp_path)]) == 2
    assert "--class" in capsys.readouterr().err
