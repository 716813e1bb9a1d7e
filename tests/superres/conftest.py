"""Fixtures of the super-resolution tests: the embedded photos written once per session."""

import pytest


@pytest.fixture(scope="session")
def photo_root(tmp_path_factory):
    """The prepared photos folder (source/, train/ shards, val/), as data.prepare=photos writes it."""
    from trainer.data.photos import ensure_photo_shards

    root = tmp_path_factory.mktemp("photos") / "photos"
    ensure_photo_shards(root)
    return root
