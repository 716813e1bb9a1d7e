"""The embedded colour digits: rendering, captions, the withheld (digit, ink) pairs, the manifest."""

import io
import json
import tarfile

import numpy as np
from PIL import Image

from trainer.data import colour_digits as cd


def test_render_puts_the_glyph_in_the_centre_with_ink_as_alpha():
    alpha = np.zeros([24, 24], np.float32)
    alpha[10, 12], alpha[0, 0] = 1.0, 0.5
    image = cd.render(alpha, ink=2, background=4)  # red on blue
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert (image[:4] == (0, 0, 255)).all() and (image[:, 28:] == (0, 0, 255)).all()  # margin = background
    assert tuple(image[14, 16]) == (255, 0, 0)  # alpha 1 = ink, offset by the 4-pixel margin
    assert tuple(image[4, 4]) == (128, 0, 128)  # alpha 0.5 = halfway


def test_colours_are_the_cube_corners_in_order():
    assert cd.COLOURS == ("black", "white", "red", "green", "blue", "yellow", "cyan", "magenta")
    assert cd.RGB.tolist()[5] == [255, 255, 0] and cd.RGB.tolist()[7] == [255, 0, 255]


def test_captions_use_the_four_templates_with_numerals_and_words():
    lines = cd.captions(7, 2, 4)
    assert "a red 7 on a blue background" in lines and "a red seven on a blue background" in lines
    assert "the digit seven, drawn in red on blue" in lines
    assert "7 in red ink over blue" in lines and "blue background with a red seven" in lines
    assert len(lines) == 8
    assert cd.prompt(7, 2, 4) == "a red seven on a blue background"


def test_withheld_pairs_never_reach_training():
    pairs = {(d, i) for _, _, d, i, _ in cd.training_samples()}  # the full default set
    assert not any(cd.withheld(d, i) for d, i in pairs)
    assert len(pairs) == 80 - sum(cd.withheld(d, i) for d in range(10) for i in range(8))  # all others shown
    assert len(cd.all_triples()) == 560


def test_shards_hold_images_captions_and_no_withheld_pair(colour_shards):
    manifest = json.loads((colour_shards / "manifest.json").read_text())
    assert manifest["captioned"] and manifest["channels"] == 3 and manifest["caption_words"]["seven"] > 0
    seen = 0
    for entry in manifest["shards"]:
        with tarfile.open(colour_shards / entry["name"]) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar}
        for name, payload in members.items():
            if not name.endswith(".json"):
                continue
            key, meta = name[:-5], json.loads(payload)
            ink = cd.COLOURS.index(meta["ink"])
            assert not cd.withheld(meta["digit"], ink), name
            caption = members[key + ".txt"].decode().splitlines()
            assert cd.prompt(meta["digit"], ink, cd.COLOURS.index(meta["background"])) in caption
            image = np.asarray(Image.open(io.BytesIO(members[key + ".png"])))
            assert image.shape == (32, 32, 3)
            seen += 1
    assert seen == manifest["samples"]


def test_heldout_digits_are_not_in_training():
    train, heldout = cd.split()
    assert len(set(train) & set(heldout)) == 0 and len(heldout) == 180
    keys = {int(key[:5]) for key, *_ in cd.training_samples(renders=1)}
    assert keys == set(train.tolist())
