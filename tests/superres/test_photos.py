"""The embedded photos: written once through the shard writer, validation photos held out."""

import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from trainer.data.crops import RandomCrop, decode_full
from trainer.data.photos import HELD_OUT, TILE, TRAIN, ensure_photo_shards, load_photo, photos_root


def _train_samples(root):
    out = {}
    for shard in sorted((root / "train").glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for name, payload in members.items():
            if name.endswith(".png"):
                key = name[:-4]
                meta = json.loads(members[key + ".json"])
                out[(meta["path"], tuple(meta["crop"]))] = {"png": payload, "__key__": key}
    return out


def test_held_out_photos_never_reach_training_shards(photo_root):
    samples = _train_samples(photo_root)
    assert sorted({path for path, _ in samples}) == sorted(f"{name}.png" for name in TRAIN)
    assert sorted(p.stem for p in (photo_root / "val").glob("*.png")) == sorted(HELD_OUT)
    assert not set(HELD_OUT) & set(TRAIN)
    assert {"astronaut", "coffee", "rocket", "camera"} <= set(HELD_OUT)
    # Pixel level too: no training image equals a held-out photo.
    held = [np.asarray(Image.open(p).convert("RGB")) for p in (photo_root / "val").glob("*.png")]
    for sample in samples.values():
        image = decode_full(sample, 3).transpose(1, 2, 0)
        assert not any(image.shape == h.shape and np.array_equal(image, h) for h in held)


def test_shards_hold_unresized_tiles_covering_every_photo(photo_root):
    samples = _train_samples(photo_root)
    for name in ("chelsea", "moon", "retina"):
        photo = load_photo(name)
        covered = np.zeros(photo.shape[:2], bool)
        for (path, (left, top, right, bottom)), sample in samples.items():
            if path != f"{name}.png":
                continue
            tile = decode_full(sample, 3).transpose(1, 2, 0)
            window = photo[top:bottom, left:right]
            if window.ndim == 2:  # grayscale photo replicated to RGB
                window = np.repeat(window[..., None], 3, 2)
            assert tile.shape == (TILE, TILE, 3) and np.array_equal(tile, window)
            covered[top:bottom, left:right] = True
        assert covered.all()
    manifest = json.loads((photo_root / "train" / "manifest.json").read_text())
    assert manifest["args"]["crop"] == "tiled" and manifest["num_samples"] == len(samples)


def test_prepared_set_is_reused(photo_root):
    stamp = (photo_root / "train" / "manifest.json").stat().st_mtime_ns
    ensure_photo_shards(photo_root)
    assert (photo_root / "train" / "manifest.json").stat().st_mtime_ns == stamp
    for item in (
        photo_root,
        photo_root / "train",
        photo_root / "train" / "manifest.json",
        photo_root / "train" / "shard-{000000..000000}.tar",
    ):
        assert photos_root(str(item)) == photo_root


def test_random_crop_is_seeded_and_exact(photo_root):
    sample = _train_samples(photo_root)[("chelsea.png", (0, 0, TILE, TILE))]
    full = decode_full(sample, 3)
    crop = RandomCrop(64)
    a = crop(sample, np.random.default_rng([1, 2]))["image"]
    b = crop(sample, np.random.default_rng([1, 2]))["image"]
    c = crop(sample, np.random.default_rng([1, 3]))["image"]
    assert a.shape == (3, 64, 64) and np.array_equal(a, b) and not np.array_equal(a, c)
    # the crop is a window of the full image, pixel for pixel
    hits = [
        (top, left)
        for top in range(full.shape[1] - 63)
        for left in range(full.shape[2] - 63)
        if np.array_equal(full[:, top : top + 64, left : left + 64], a)
    ]
    assert hits


def test_crop_larger_than_image_is_a_clear_error(photo_root):
    sample = _train_samples(photo_root)[("chelsea.png", (0, 0, TILE, TILE))]
    with pytest.raises(ValueError, match="smaller than the 512x512 crop"):
        RandomCrop(512)(sample, np.random.default_rng(0))


def _other_packages_photos():
    """Sample photos of other packages that users evaluate on (those installed here)."""
    photos = []
    from sklearn.datasets import load_sample_images

    photos += list(load_sample_images().images)
    for module, names in (("matplotlib.cbook", ("grace_hopper.jpg",)), ("pywt.data", ("ascent", "aero", "camera"))):
        try:
            mod = __import__(module, fromlist=["x"])
        except ImportError:
            continue
        for name in names:
            try:
                photos.append(
                    np.asarray(
                        mod.get_sample_data(name, asfileobj=False) if "cbook" in module else getattr(mod, name)()
                    )
                )
            except Exception:
                pass
    return photos


def test_photos_of_other_packages_are_never_trained_on(photo_root):
    sources = {p.stem: np.asarray(Image.open(p)) for p in (photo_root / "source").glob("*.png")}
    assert sorted(sources) == sorted(TRAIN)
    others = _other_packages_photos()
    assert others  # scikit-learn's china and flower at least
    for other in others:
        for image in sources.values():
            assert not (image.shape == other.shape and np.array_equal(image, other))
