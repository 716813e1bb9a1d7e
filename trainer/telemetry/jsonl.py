"""The JSONL metrics log of rank 0 (`RUN/metrics.jsonl`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional


class JsonlLog:
    """Append-only metrics log, one JSON object per log step (rank 0 only)."""

    def __init__(self, path: Optional[Path]):
        self._file = open(path, "a", buffering=1) if path is not None else None

    def write(self, record: dict) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
