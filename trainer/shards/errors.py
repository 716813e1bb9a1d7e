"""The one error type the shard writer raises for bad input, and how it lists offenders."""

from __future__ import annotations

from collections.abc import Sequence

# Enough names to find the pattern, few enough to keep the error on one readable line.
MAX_LISTED = 20


class ShardError(ValueError):
    """Bad input or settings. The message names the file, key or flag and how to fix it."""


def list_offenders(entries: Sequence[str], limit: int = MAX_LISTED) -> str:
    """Join up to `limit` entries with '; ', then say how many more were left out."""
    shown = "; ".join(entries[:limit])
    rest = len(entries) - limit
    return f"{shown}; and {rest} more" if rest > 0 else shown


def problem(summary: str, entries: Sequence[str], fix: str) -> ShardError:
    """A ShardError of the form '<n> <summary>: <entries>. <fix>'."""
    return ShardError(f"{len(entries)} {summary}: {list_offenders(entries)}. {fix}")
