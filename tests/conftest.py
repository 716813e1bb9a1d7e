"""Shared test set-up.

TRITON_INTERPRET must be set before any module that defines @triton.jit kernels is imported, so
it is set here, at conftest import time, whenever no CUDA device is present. On a GPU machine the
same tests run compiled.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch missing is reported by the imports themselves
        return False


if not _cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Worker processes started by tests import the tree under test, not an installed copy.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def digit_shards(tmp_path_factory):
    """The embedded digits written once per test session: (folder, brace pattern)."""
    from trainer.data.digits import write_digit_shards

    folder = tmp_path_factory.mktemp("digits")
    write_digit_shards(folder)
    return folder, str(folder / "shard-{000000..000007}.tar")


@pytest.fixture(autouse=True)
def _seeded_random_state():
    """Every test starts from the same random state, whatever ran before it in this process: a test
    that draws weights or inputs gets the same draw alone and in the suite (no order-dependent luck)."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
