"""Shard writer: image datasets -> WebDataset tar shards + manifest.json.

Library entry points: `write_shards(...)` and `read_manifest(out_dir)`; the command line is
`hiresgan shards SRC OUT` (see cli.py and README.md).
"""

from .errors import ShardError
from .manifest import Manifest, ShardInfo, read_manifest
from .writer import write_shards

__all__ = ["Manifest", "ShardError", "ShardInfo", "read_manifest", "write_shards"]
