"""Decoding to the training resolution: JPEG draft (DCT-domain) downscaling stays close to a
full decode + area average; channel conversion both ways."""

import io

import numpy as np
from PIL import Image

from trainer.data.stream import decode_image


def encode(array, fmt, **kw):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kw)
    return buf.getvalue()


def smooth_rgb(size, seed=0):
    yy, xx = np.mgrid[0:size, 0:size] / size
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(1, 5, 2)
    return np.clip(np.stack([128 + 100 * np.sin(a * xx), 128 + 100 * np.cos(b * yy), 128 + 60 * np.sin(a * (xx + yy))],
                            -1), 0, 255).astype(np.uint8)


def test_jpeg_draft_downscale_matches_full_decode_and_box_filter():
    data = encode(smooth_rgb(128), "JPEG", quality=95, subsampling=0)
    fast = decode_image({"jpg": data}, 16, 3).astype(float)
    with Image.open(io.BytesIO(data)) as img:
        full = np.asarray(img.convert("RGB").resize((16, 16), Image.BOX)).transpose(2, 0, 1).astype(float)
    assert fast.shape == (3, 16, 16)
    assert np.abs(fast - full).mean() < 2.0 and np.abs(fast - full).max() < 12


def test_channels_convert_both_ways_and_png_is_exact():
    rgb = smooth_rgb(8)
    assert np.array_equal(decode_image({"png": encode(rgb, "PNG")}, 8, 3), rgb.transpose(2, 0, 1))
    gray = decode_image({"png": encode(rgb, "PNG")}, 8, 1)
    assert gray.shape == (1, 8, 8)
    assert np.array_equal(gray[0], np.asarray(Image.fromarray(rgb).convert("L")))
    assert np.array_equal(decode_image({"png": encode(rgb[:, :, 0], "PNG")}, 8, 3), np.stack([rgb[:, :, 0]] * 3))


def test_batches_mirror_exactly_what_numpy_flips():
    """The collate's word-reversal mirror (uint8 rows whose width divides by 8) and its plain path
    (other widths, dtypes, non-contiguous arrays) must both equal np.flip on the last axis."""
    from trainer.data.stream import _stacked

    rng = np.random.default_rng(0)
    flips = np.array([True, False, True])
    cases = [rng.integers(0, 256, (3, 3, 16, 24), dtype=np.uint8),  # word path
             rng.integers(0, 256, (3, 1, 5, 13), dtype=np.uint8),  # width 13: plain path
             rng.normal(size=(3, 2, 4, 8)).astype(np.float32),  # wider dtype: plain path
             rng.integers(0, 256, (3, 3, 16, 24), dtype=np.uint8)[:, :, ::2]]  # non-contiguous
    for arrays in cases:
        batch = _stacked(list(arrays), flips).numpy()
        expected = np.stack([np.flip(a, -1) if f else a for a, f in zip(arrays, flips)])
        assert batch.dtype == arrays.dtype and np.array_equal(batch, expected)
    tokens = rng.integers(0, 99, (3, 7))  # not image-like: never mirrored
    assert np.array_equal(_stacked(list(tokens), flips).numpy(), tokens)
    # decode_image's planes are contiguous and writable, like the transposed copy they replace
    planes = decode_image({"png": encode(smooth_rgb(8), "PNG")}, 8, 3)
    assert planes.flags.c_contiguous and planes.flags.writeable
