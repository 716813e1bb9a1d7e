"""LR/HR pairs from the stream: bicubic pairs line up pixel for pixel, are seeded for resume,
survive flips; the Real-ESRGAN chain is seeded and makes LR of the right size."""

import numpy as np
import pytest

from trainer.config import load_config
from trainer.data import stream_for
from trainer.superres.degrade import PairDecoder, bicubic_down, bicubic_up, modcrop
from trainer.superres.realesrgan import gaussian_kernel, second_order, sinc_kernel


def _hr(seed=0, size=64):
    # A smooth image plus texture: bicubic of a shifted copy must differ clearly.
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = 127 + 60 * np.sin(x / 3.0) * np.cos(y / 5.0)
    return np.clip(base[None] + rng.normal(0, 20, (3, size, size)), 0, 255).astype(np.uint8)


def test_bicubic_pairs_line_up_pixel_for_pixel(photo_root):
    cfg = load_config(
        "configs/sr_photos.yaml", [f"data.urls={photo_root / 'train'}", "data.workers=0", "data.xflip=true"]
    )
    decoder = PairDecoder(64, 4)
    batch = next(stream_for(cfg, rank=0, world_size=1, batch_size=8, start_batch=0, decoder=decoder))
    hr, lr = batch.images.numpy(), batch.extras["lr"].numpy()
    assert hr.shape == (8, 3, 64, 64) and lr.shape == (8, 3, 16, 16) and lr.dtype == np.uint8
    exact, shifted = [], []
    for h, low in zip(hr, lr):  # flipped samples included: flips commute with the symmetric kernel
        exact.append(np.abs(bicubic_down(h, 4).astype(int) - low.astype(int)))
        shifted.append(np.abs(bicubic_down(np.roll(h, 1, axis=2), 4).astype(int) - low.astype(int)))
    assert max(e.max() for e in exact) <= 1 and np.mean(exact) < 0.01
    # Off by one HR pixel is clearly worse (flat crops, e.g. the retina's black border, hardly move).
    assert np.mean(shifted) > 0.5 and np.mean(shifted) > 50 * max(np.mean(exact), 0.01)


def test_bicubic_down_is_exact_and_a_shift_is_not():
    hr = _hr()
    lr = PairDecoder(64, 4)({"png": _png(hr), "__key__": "k"}, np.random.default_rng(0))
    assert np.array_equal(lr["image"], hr) and np.array_equal(lr["lr"], bicubic_down(hr, 4))
    shifted = bicubic_down(np.roll(hr, 1, axis=1), 4)
    assert np.abs(shifted.astype(int) - lr["lr"].astype(int)).mean() > 3
    assert bicubic_up(lr["lr"], 4).shape == hr.shape
    assert modcrop(hr[:, :63, :62], 4).shape == (3, 60, 60)
    with pytest.raises(ValueError, match="does not divide by the scale"):
        bicubic_down(hr[:, :62], 4)


def _png(chw):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(chw.transpose(1, 2, 0)).save(buf, "PNG")
    return buf.getvalue()


def test_stream_pairs_repeat_exactly_on_resume(photo_root):
    cfg = load_config("configs/sr_photos.yaml", [f"data.urls={photo_root / 'train'}", "data.workers=0"])
    decoder = PairDecoder(64, 4)
    full = stream_for(cfg, rank=0, world_size=1, batch_size=4, start_batch=0, decoder=decoder)
    batches = [next(full) for _ in range(3)]
    resumed = next(stream_for(cfg, rank=0, world_size=1, batch_size=4, start_batch=2, decoder=decoder))
    assert np.array_equal(resumed.images, batches[2].images)
    assert np.array_equal(resumed.extras["lr"], batches[2].extras["lr"])


def test_realesrgan_chain_is_seeded_and_sized():
    hr = _hr(1)
    a = second_order(hr, 4, np.random.default_rng([3, 1]))
    b = second_order(hr, 4, np.random.default_rng([3, 1]))
    c = second_order(hr, 4, np.random.default_rng([3, 2]))
    assert a.shape == (3, 16, 16) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a, bicubic_down(hr, 4))
    out = PairDecoder(64, 4, degradation="realesrgan")({"png": _png(hr), "__key__": "k"}, np.random.default_rng(9))
    assert out["lr"].shape == (3, 16, 16)


def test_kernels_are_normalised():
    assert float(gaussian_kernel(11, 2.0, 0.7, 0.5).sum()) == pytest.approx(1.0, abs=1e-5)
    k = sinc_kernel(13, 1.5)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-5) and float(k.min()) < 0  # ringing lobes


def test_unknown_degradation_is_refused():
    with pytest.raises(ValueError, match="valid choices: bicubic, realesrgan"):
        PairDecoder(64, 4, degradation="jpeg")
