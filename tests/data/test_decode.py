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
