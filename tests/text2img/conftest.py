"""Shared set-up of the text2img tests: a small captioned colour-digits shard set (one colouring
per training digit instead of eight) written once per session."""

import pytest


@pytest.fixture(scope="session")
def colour_shards(tmp_path_factory):
    from trainer.data.colour_digits import write_colour_digit_shards

    folder = tmp_path_factory.mktemp("colour_digits") / "shards"
    write_colour_digit_shards(folder, shards=4, renders=1)
    return folder
