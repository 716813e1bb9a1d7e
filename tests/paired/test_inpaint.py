"""Inpainting: generated and folder masks (seeded, exact on resume), the composite keeps known
pixels bit-exact, the decoder through the real stream, `hiresgan sample --inpaint` with bad masks,
the gate's measures, and (slow) one rank training a tiny inpainting model through the real CLI."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.config import ConfigError, load_config
from trainer.data.masks import InpaintDecoder, centre_box, generate_mask, mask_files, read_mask_file
from trainer.data.stream import StreamSpec, make_loader
from trainer.evaluation.inpaint_gate import hole_detail, quality_misses
from trainer.export import export_generator
from trainer.models import build_networks
from trainer.models.inpaint import InpaintGenerator, smooth_fill

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/inpaint_photos.yaml"
TINY = [
    "data.resolution=32",
    "data.channels=1",
    "pix2pix.filters=4",
    "pix2pix.d_filters=4",
    "pix2pix.depth=0",
    "pix2pix.patch_layers=2",
]


def hiresgan(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "launch", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def in_process(capsys, *args):
    """The CLI in this process (no subprocess: these tests stay fast and unmarked)."""
    from types import SimpleNamespace

    from launch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=captured.out, stderr=captured.err)


def test_generated_masks_repeat_with_the_seed_and_stay_within_bounds():
    masks = [generate_mask(64, np.random.default_rng(i), max_hole=0.4) for i in range(30)]
    again = [generate_mask(64, np.random.default_rng(i), max_hole=0.4) for i in range(30)]
    assert all(np.array_equal(a, b) for a, b in zip(masks, again))
    shares = [float((m > 0).mean()) for m in masks]
    assert all(m.shape == (1, 64, 64) and set(np.unique(m)) <= {0, 255} for m in masks)
    assert all(0 < s <= 0.4 for s in shares) and len(set(shares)) > 20
    boxes_only = generate_mask(64, np.random.default_rng(0), strokes=0, boxes=1)
    rows = np.flatnonzero(boxes_only[0].any(1))
    assert (boxes_only[0, rows[0] : rows[-1] + 1] > 0).sum(0).max() == len(rows)  # one solid rectangle


def test_mask_folder_is_read_resized_and_all_white_masks_are_refused(tmp_path):
    Image.fromarray(np.pad(np.full((8, 8), 255, np.uint8), 12)).save(tmp_path / "m.png")
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(tmp_path / "white.png")
    assert [p.name for p in mask_files(tmp_path)] == ["m.png", "white.png"]
    mask = read_mask_file(tmp_path / "m.png", 64)
    assert mask.shape == (1, 64, 64) and (mask > 0).mean() == pytest.approx(0.0625)
    with pytest.raises(ValueError, match="white.png.*all white"):
        read_mask_file(tmp_path / "white.png", 32)
    with pytest.raises(ValueError, match="inpaint.masks"):
        mask_files(tmp_path / "none")


def test_decoder_in_the_stream_gives_masks_that_resume_exactly(digit_shards):
    _, pattern = digit_shards
    from trainer.data.sources import resolve_urls

    def spec(start):
        return StreamSpec(
            urls=tuple(resolve_urls(pattern)),
            seed=3,
            rank=0,
            world_size=1,
            batch_size=4,
            resolution=32,
            channels=1,
            labeled=False,
            xflip=True,
            shuffle_buffer=16,
            start_batch=start,
            decoder=InpaintDecoder(32, 1),
        )

    stream = make_loader(spec(0), 0)
    batches = [next(stream) for _ in range(3)]
    assert batches[0].extras["mask"].shape == (4, 1, 32, 32) and batches[0].extras["mask"].dtype == torch.uint8
    resumed = next(make_loader(spec(2), 0))
    assert torch.equal(resumed.extras["mask"], batches[2].extras["mask"])
    assert torch.equal(resumed.images, batches[2].images)


def test_decoder_reads_the_targets_of_paired_shards(tmp_path):
    from trainer.data.edges2digits import write_edges2digits_shards
    from trainer.data.reader import ErrorPolicy, read_shard

    write_edges2digits_shards(tmp_path, shards=1)
    sample = next(read_shard(str(tmp_path / "shard-000000.tar"), ErrorPolicy("fail")))
    out = InpaintDecoder(32, 1)(sample, np.random.default_rng(0))
    assert out["image"].shape == out["mask"].shape == (1, 32, 32)
    assert np.array_equal(out["image"][0], np.asarray(Image.open(io.BytesIO(sample["b.png"]))))


def test_composite_keeps_known_pixels_exactly_and_runs_at_any_size():
    G = InpaintGenerator(img_resolution=32, img_channels=3, filters=4)
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    mask = torch.from_numpy(np.stack([generate_mask(64, np.random.default_rng(i))[:, :, :64] for i in range(2)]))
    mask = torch.nn.functional.pad((mask > 0).float(), (0, 32))
    out = G(x, mask)
    assert out.shape == x.shape and torch.equal(out[mask.expand_as(x) == 0], x[mask.expand_as(x) == 0])
    flat = torch.full((1, 1, 16, 16), 0.5)
    hole = torch.zeros(1, 1, 16, 16)
    hole[:, :, 4:12, 4:12] = 1
    assert torch.allclose(smooth_fill(flat * (1 - hole), hole, 4), flat)  # a flat image is filled flat
    ramp = torch.linspace(-1, 1, 16).expand(1, 1, 16, 16).contiguous()
    filled = smooth_fill(ramp * (1 - hole), hole, 4)
    assert (filled - ramp)[hole > 0].abs().max() < 0.05  # a linear ramp is harmonic: filled almost exactly


def test_exports_without_the_prefill_equation_keep_the_harmonic_fill(tmp_path):
    """Exports written before inpaint.prefill_equation existed have no such init kwarg: they were
    trained with the harmonic fill and must keep it (trainer and standalone sampler)."""
    import json

    from sampler import hiresgan_image2image as standalone
    from trainer.export import load_generator

    G = InpaintGenerator(img_resolution=32, img_channels=3, filters=4, prefill_equation="biharmonic").eval()
    export_generator(G, tmp_path / "export")
    meta = tmp_path / "export" / "generator.json"
    description = json.loads(meta.read_text())
    assert description["init_kwargs"]["prefill_equation"] == "biharmonic"
    del description["init_kwargs"]["prefill_equation"]
    meta.write_text(json.dumps(description))
    assert load_generator(tmp_path / "export")[0].prefill_equation == "harmonic"
    assert standalone.load_generator(tmp_path / "export")[0].prefill_equation == "harmonic"


def test_biharmonic_prefill_continues_slopes_that_the_harmonic_one_bends():
    """A paraboloid is biharmonic but not harmonic: the biharmonic fill follows it into a hole,
    the harmonic fill sags towards the rim's values (max errors 0.09 and 0.22 on this bowl: the
    biharmonic schedule is not run to convergence); both fill flat images flat."""
    size = 64
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    bowl = (xx**2 + yy**2 - 1)[None, None]
    hole = torch.zeros(1, 1, size, size)
    hole[:, :, 20:44, 20:44] = 1
    errors = {
        eq: float((smooth_fill(bowl * (1 - hole), hole, 6, eq) - bowl)[hole > 0].abs().max())
        for eq in ("harmonic", "biharmonic")
    }
    assert errors["biharmonic"] < 0.5 * errors["harmonic"], errors
    flat = torch.full((1, 3, size, size), -0.25)
    assert torch.allclose(smooth_fill(flat * (1 - hole), hole, 6, "biharmonic"), flat, atol=1e-6)
    with pytest.raises(ValueError, match="triharmonic"):
        smooth_fill(flat, hole, 6, "triharmonic")


def test_bad_inpaint_settings_name_the_key():
    for override, key in (
        (["model.conditional=true", "data.num_classes=10"], "model.conditional"),
        (["inpaint.max_hole=0"], "inpaint.max_hole"),
        (["inpaint.strokes=0", "inpaint.boxes=0"], "inpaint.strokes"),
        (["inpaint.prefill_equation=poisson"], "inpaint.prefill_equation"),
    ):
        with pytest.raises(ConfigError, match=key):
            load_config(CONFIG, TINY + override)
    G, D = build_networks(load_config(CONFIG, TINY))
    assert G.family == "inpaint" and D(torch.zeros(1, 1, 32, 32), None, cond=torch.zeros(1, 1, 32, 32)).shape[0] == 1


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_sample_inpaint_keeps_known_bytes_and_names_each_bad_mask(tmp_path, capsys):
    export_generator(InpaintGenerator(img_resolution=32, img_channels=3, filters=4).eval(), tmp_path / "export")
    rng = np.random.default_rng(0)
    images, masks = tmp_path / "images", tmp_path / "masks"
    for name, (h, w) in {
        "good": (40, 70),
        "wrongsize": (32, 32),
        "white": (32, 32),
        "black": (32, 32),
        "nomask": (32, 32),
    }.items():
        _save(images / f"{name}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    _save(masks / "good.png", np.pad(np.full((10, 20), 255, np.uint8), ((5, 25), (10, 40))))
    _save(masks / "wrongsize.png", np.zeros((16, 16), np.uint8))
    _save(masks / "white.png", np.full((32, 32), 255, np.uint8))
    _save(masks / "black.png", np.zeros((32, 32), np.uint8))
    out = tmp_path / "out"
    result = in_process(capsys, "sample", tmp_path / "export", "--inpaint", images, "--masks", masks, "--out", out)
    assert result.returncode == 1, result.stderr
    assert [p.name for p in out.iterdir()] == ["good.png"]
    for needle in (
        "wrongsize.png: mask is 16x16 but its image is 32x32",
        "white.png: mask is all white",
        "black.png: mask is all black",
        "nomask.png: no mask named 'nomask.png'",
    ):
        assert sum(needle in line for line in result.stderr.splitlines()) == 1, (needle, result.stderr)
    before, after = np.asarray(Image.open(images / "good.png")), np.asarray(Image.open(out / "good.png"))
    known = np.asarray(Image.open(masks / "good.png")) < 128
    assert after.shape == before.shape and np.array_equal(after[known], before[known])
    assert not np.array_equal(after[~known], before[~known])
    no_masks = in_process(capsys, "sample", tmp_path / "export", "--inpaint", images, "--out", out)
    assert no_masks.returncode == 2 and "--masks" in no_masks.stderr


def test_gate_measures_detail_and_names_each_miss():
    real = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    hole = centre_box(64, 24)[0] > 0
    smooth = real.copy()
    smooth[hole] = 128
    assert hole_detail(smooth, hole) == 0 and hole_detail(real, hole) > 10
    report = {"psnr_gap": 1.2, "model": {"psnr": 20.0, "detail": 0.1}, "biharmonic": {"psnr": 21.2}, "known_changed": 3}
    misses = quality_misses(report)
    assert len(misses) == 3 and "1.20 dB below" in misses[0] and "3 known pixel(s)" in misses[2]


def test_gate_crops_a_tuning_folder_and_names_a_too_small_image(tmp_path):
    from trainer.evaluation.inpaint_gate import folder_crops

    photo = np.random.default_rng(1).integers(0, 256, (300, 280), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "gray.png")
    crops = folder_crops(tmp_path)
    assert list(crops) == ["gray"] and crops["gray"].shape == (256, 256, 3)
    assert np.array_equal(crops["gray"][:, :, 0], photo[22:278, 12:268])  # the centre crop, as RGB
    Image.fromarray(photo[:200]).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match="small.png is 280x200"):
        folder_crops(tmp_path)


@pytest.mark.slow
def test_inpaint_trains_exports_and_fills_a_folder(tmp_path, digit_shards):
    _, pattern = digit_shards
    args = [
        "train",
        CONFIG,
        *TINY,
        "train.batch_size=4",
        "train.kimg=0.016",
        "train.log_every=2",
        "data.workers=0",
        "train.threads=1",
        "metrics.port=0",
        "loss.d_reg_interval=2",
        "inpaint.feature_matching=1",
        f"data.urls={pattern}",
        "data.prepare=none",
        f"run.out_dir={tmp_path}",
        "run.name=inp",
    ]
    result = hiresgan(*args, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    records = [json.loads(line) for line in (tmp_path / "inp" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 4
    assert {"G/adversarial", "G/hole_l1", "G/known_l1", "G/feature_matching", "D/r1"} <= set(records[-1]["losses"])
    assert Image.open(tmp_path / "inp" / "samples" / "latest.png").size[1] == 3 * 32
    _save(tmp_path / "images" / "d.png", np.full((32, 32), 200, np.uint8))
    _save(tmp_path / "masks" / "d.png", np.pad(np.full((8, 8), 255, np.uint8), 12))
    filled = hiresgan(
        "sample",
        tmp_path / "inp" / "export",
        "--inpaint",
        tmp_path / "images",
        "--masks",
        tmp_path / "masks",
        "--out",
        tmp_path / "out",
    )
    assert filled.returncode == 0, filled.stderr
    assert (tmp_path / "out" / "d.png").is_file()


@pytest.mark.parametrize("family", ["pix2pix", "inpaint", "inpaint-biharmonic"])
def test_standalone_sampler_matches_the_trainer_and_reads_pngs(tmp_path, family):
    from sampler import hiresgan_image2image as standalone
    from trainer.models.pix2pix import Pix2PixGenerator

    G = (
        Pix2PixGenerator(img_resolution=32, img_channels=3, in_channels=1, filters=4, c_dim=3)
        if family == "pix2pix"
        else InpaintGenerator(
            img_resolution=32, img_channels=3, filters=4, prefill_equation=family.partition("-")[2] or "harmonic"
        )
    ).eval()
    for p in G.parameters():  # the inpainting correction starts at zero: make it matter
        p.data += 0.01 * torch.randn_like(p)
    export_generator(G, tmp_path / "export")
    S, description = standalone.load_generator(tmp_path / "export")
    assert description["family"] == family.partition("-")[0]
    rng = np.random.default_rng(0)
    if family == "pix2pix":
        x, c = torch.rand(2, 1, 64, 32) * 2 - 1, torch.eye(3)[:2]
        assert torch.allclose(S(x, c), G(x, c), atol=1e-6)
    else:
        x, m = torch.rand(2, 3, 64, 32) * 2 - 1, torch.zeros(2, 1, 64, 32)
        m[:, :, 10:30, 5:20] = 1
        assert torch.allclose(S(x, m), G(x, m), atol=1e-6)
        assert S.prefill_equation == G.prefill_equation
    for mode, shape in (("L", (23, 17)), ("RGB", (23, 17, 3)), ("RGBA", (9, 40, 4))):
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        pixels[:5] = pixels[:1]  # repeated rows: the encoder picks other filters there
        Image.fromarray(pixels, mode).save(tmp_path / "p.png")
        expected = pixels if pixels.ndim == 2 else pixels[..., :3]
        read = standalone.read_png(tmp_path / "p.png").permute(1, 2, 0).numpy()
        assert np.array_equal(read.squeeze(2) if read.shape[2] == 1 else read, expected)
        standalone.write_png(torch.from_numpy(read).permute(2, 0, 1), tmp_path / "q.png")
        assert np.array_equal(np.asarray(Image.open(tmp_path / "q.png")), expected)


def test_standalone_sampler_cli_fills_a_folder_and_names_bad_masks(tmp_path, capsys):
    from sampler import hiresgan_image2image as standalone

    export_generator(InpaintGenerator(img_resolution=32, img_channels=3, filters=4).eval(), tmp_path / "export")
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        _save(tmp_path / "images" / f"{name}.png", rng.integers(0, 256, (40, 24, 3), dtype=np.uint8))
    _save(tmp_path / "masks" / "a.png", np.pad(np.full((10, 10), 255, np.uint8), ((5, 25), (5, 9))))
    _save(tmp_path / "masks" / "b.png", np.zeros((40, 24), np.uint8))
    code = standalone.main(
        [
            str(a)
            for a in (
                tmp_path / "export",
                "--inpaint",
                tmp_path / "images",
                "--masks",
                tmp_path / "masks",
                "--out",
                tmp_path / "out",
            )
        ]
    )
    assert code == 1 and "b.png: mask is all black" in capsys.readouterr().err
    before = np.asarray(Image.open(tmp_path / "images" / "a.png"))
    after = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    known = np.asarray(Image.open(tmp_path / "masks" / "a.png")) < 128
    assert np.array_equal(after[known], before[known]) and [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]


def test_seeds_on_an_image_to_image_export_point_to_the_right_flag(tmp_path, capsys):
    export_generator(InpaintGenerator(img_resolution=32, img_channels=3, filters=4).eval(), tmp_path / "export")
    result = in_process(capsys, "sample", tmp_path / "export", "--seeds", "0", "--out", tmp_path / "out")
    assert result.returncode == 2 and "--inpaint IMAGES --masks MASKS" in result.stderr


def test_comod_generator_composites_is_deterministic_in_eval_and_refuses_other_sizes(tmp_path, capsys):
    cfg = load_config(
        CONFIG,
        TINY
        + [
            "inpaint.generator=comod",
            "model.channel_base=256",
            "model.channel_max=16",
            "model.w_dim=16",
            "model.mapping_layers=1",
        ],
    )
    G, _ = build_networks(cfg)
    x, m = torch.rand(2, 1, 32, 32) * 2 - 1, torch.zeros(2, 1, 32, 32)
    m[:, :, 8:20, 4:24] = 1
    out = G(x, m)
    assert torch.equal(out[m == 0], x[m == 0]) and out.requires_grad
    G.eval()
    assert torch.equal(G(x, m), G(x, m))
    with pytest.raises(ConfigError, match="inpaint.generator"):
        load_config(CONFIG, TINY + ["inpaint.generator=lama"])
    export_generator(G, tmp_path / "export")
    _save(tmp_path / "images" / "small.png", np.zeros((16, 16), np.uint8))
    _save(tmp_path / "masks" / "small.png", np.pad(np.full((4, 4), 255, np.uint8), 6))
    result = in_process(
        capsys,
        "sample",
        tmp_path / "export",
        "--inpaint",
        tmp_path / "images",
        "--masks",
        tmp_path / "masks",
        "--out",
        tmp_path / "out",
    )
    assert result.returncode == 1 and "fills 32x32 images only" in result.stderr


def test_r1_of_a_patch_discriminator_penalizes_the_mean_patch_score():
    """R1 uses the score the adversarial loss uses (the mean over patches): a D whose P patches all
    repeat one logit gets exactly the penalty of that single logit, not P^2 times it."""
    from trainer import losses

    weight = torch.randn(1, 3, 8, 8)

    def single(x, c):
        return (x * weight).sum(dim=[1, 2, 3])[:, None]  # [N, 1]

    def patches(x, c):
        return single(x, c).expand(-1, 100)  # [N, 100]: the same logit at every patch

    x = torch.randn(2, 3, 8, 8)
    one = losses.discriminator_r1(single, x, None, gamma=1.0, interval=1).terms["r1"]
    many = losses.discriminator_r1(patches, x, None, gamma=1.0, interval=1).terms["r1"]
    assert torch.allclose(many, one)
    assert torch.allclose(one, weight.square().sum())  # |grad|^2 of a linear score is |w|^2
