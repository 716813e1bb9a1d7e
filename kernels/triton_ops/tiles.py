"""The one tile-size rule of every kernel: how many elements one program handles, per axis.

A GPU program gets 1024 elements (4 warps x 8 per thread: enough loads in flight to be
memory-bound, few enough registers to keep occupancy). The interpreter costs about a
millisecond per program whatever its size, so there a program takes up to 32768 elements,
which covers a whole test tensor in one or a few programs.
"""

from __future__ import annotations

from typing import Optional, Sequence

import triton


def budget() -> int:
    from kernels._dispatch import interpreting

    return 1 << 15 if interpreting() else 1024


def tile_shape(*extents: int, caps: Optional[Sequence[Optional[int]]] = None) -> tuple[int, ...]:
    """Powers of 2, one per axis of `extents` (outermost first), whose product fits the budget.
    The innermost axis is filled first (contiguous, coalesced accesses), then the next one out,
    so small inner extents leave room for several rows or planes per program (the
    low-resolution layers). `caps` bounds single axes (None: no bound)."""
    caps = list(caps) if caps is not None else [None] * len(extents)
    if len(caps) != len(extents):
        raise ValueError(f"caps {caps} must have one entry per extent {extents}")
    left = budget()
    shape = []
    for n, cap in zip(reversed(extents), reversed(caps)):
        b = min(triton.next_power_of_2(max(int(n), 1)), left, cap or left)
        shape.append(b)
        left //= b
    return tuple(reversed(shape))


# Offsets from here on need 64-bit arithmetic in the kernels (their INT64 constexpr). Tests lower
# it (monkeypatch) to run the 64-bit code paths end to end at interpreter sizes.
INT64_FROM = 2**31 - 1


def needs_int64(reach: int) -> bool:
    """Whether a launch whose largest element offset is below `reach` needs 64-bit indexing."""
    return reach >= INT64_FROM
