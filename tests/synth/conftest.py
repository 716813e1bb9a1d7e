import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # synthkit


@pytest.fixture
def cond_export(tmp_path):
    """A tiny class-conditional export (MLP, 10 digit classes, 1x32x32)."""
    from synthkit import write_export

    return write_export(tmp_path / "cond", c_dim=10)


@pytest.fixture
def uncond_export(tmp_path):
    from synthkit import write_export

    return write_export(tmp_path / "uncond", c_dim=0)
