"""The embedded unpaired CycleGAN default: its two domains are disjoint halves of the even-indexed
digits, made as the paired edges2digits set makes them, and the odd-indexed digits stay out."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from launch.preflight import prepare_data
from trainer.config import load_config
from trainer.data.digits import load_digit_arrays
from trainer.data.edges2digits import edge_maps
from trainer.data.unpaired_digits import domain_indices

ROOT = Path(__file__).resolve().parents[2]


def read_domain(folder: Path) -> dict[int, np.ndarray]:
    images = {}
    for entry in json.loads((folder / "manifest.json").read_text())["shards"]:
        with tarfile.open(folder / entry["name"]) as tar:
            for member in tar.getmembers():
                key = int(member.name.split(".")[0])
                images[key] = np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())))
    return images


def test_domains_are_disjoint_even_halves_made_like_the_paired_set(tmp_path):
    cfg = load_config(
        ROOT / "configs/cyclegan_edges2digits.yaml", [f"data.urls={tmp_path}/edges", f"data.urls_b={tmp_path}/digits"]
    )
    prepare_data(cfg)
    a, b = read_domain(tmp_path / "edges"), read_domain(tmp_path / "digits")
    digits, _ = load_digit_arrays()
    assert not set(a) & set(b)  # no digit appears in both domains: truly unpaired
    assert all(k % 2 == 0 for k in set(a) | set(b))  # the odd-indexed digits are held out
    assert len(a) + len(b) == len(range(0, len(digits), 2))
    expected_a, expected_b = domain_indices(len(digits))
    assert sorted(a) == list(expected_a) and sorted(b) == list(expected_b)
    some = sorted(a)[:5]
    assert np.array_equal(np.stack([a[k] for k in some]), edge_maps(digits[some]))
    assert set(np.unique(a[some[0]])) <= {0, 255}  # white edges on black
    assert all(np.array_equal(b[k], digits[k]) for k in sorted(b)[:5])
    prepare_data(cfg)  # a complete set is kept as it is
    assert read_domain(tmp_path / "edges").keys() == a.keys()


def test_gate_tunes_on_domain_a_and_judges_on_held_out_digits():
    from trainer.evaluation.edges2digits_gate import split_pairs

    digits, labels = load_digit_arrays()
    a_index, _ = domain_indices(len(digits))
    edges, real, tuned_labels = split_pairs("domain_a")
    assert np.array_equal(edges, edge_maps(digits[a_index])) and np.array_equal(real, digits[a_index])
    assert np.array_equal(tuned_labels, labels[a_index])
    held_edges, _, held_labels = split_pairs("held_out")
    odd = np.arange(1, len(digits), 2)
    assert np.array_equal(held_labels, labels[odd]) and np.array_equal(held_edges, edge_maps(digits[odd]))
    assert not set(a_index) & set(odd)
