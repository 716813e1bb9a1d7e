"""`data.mix`: a second shard set (e.g. a `hiresgan synth` set) mixed into every batch at a set ratio.

Each rank's batch of B images takes round(fraction * B) from `data.mix.urls` and the rest from
`data.urls`, every batch alike (a fixed count, not a coin per sample): both sub-streams are then
ordinary streams with a fixed batch size, so each stays deterministic and resumes exactly (a
restart at batch b skips b batches of each), and the share seen is the same in every batch. The
images of a batch are put in a seeded order (same on resume), so batch-wise statistics such as
StyleGAN's minibatch-stddev groups see real and mixed-in images together, not in two blocks.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from trainer.data.sources import DataError
from trainer.data.stream import Batch

MIX_SEED_OFFSET = 0x4D495831  # the mixed-in stream's order differs from the main stream's


def split_batch(fraction: float, batch_size: int) -> tuple[int, int]:
    """(images from data.urls, images from data.mix.urls) per rank batch; DataError if the
    fraction rounds to none of the mixed-in set (or to all of it while asking for less)."""
    n_mix = int(round(fraction * batch_size))
    if fraction > 0 and n_mix == 0:
        raise DataError(f"data.mix.fraction={fraction} takes 0 of the {batch_size} images of a rank's batch; "
                        f"raise it to at least {0.5 / batch_size:.3g} or raise train.batch_size")
    if fraction < 1 and n_mix == batch_size:
        raise DataError(f"data.mix.fraction={fraction} takes all {batch_size} images of a rank's batch from "
                        "data.mix.urls; set data.mix.fraction=1 (or point data.urls at the mixed-in set) if "
                        "that is meant, else lower it or raise train.batch_size")
    return batch_size - n_mix, n_mix


class MixedStream:
    """Concatenates one batch of each sub-stream and puts the images in a seeded order."""

    def __init__(self, main: Iterator[Batch] | None, mixed: Iterator[Batch], *, seed: int, rank: int,
                 start_batch: int):
        self.main, self.mixed = main, mixed
        self.seed, self.rank, self.batch = seed, rank, start_batch

    def __iter__(self) -> "MixedStream":
        return self

    def __next__(self) -> Batch:
        parts = ([next(self.main)] if self.main is not None else []) + [next(self.mixed)]
        n = sum(len(p.images) for p in parts)
        order = torch.from_numpy(np.random.default_rng([self.seed, self.rank, self.batch, 0x4D4F]).permutation(n))
        self.batch += 1
        keys = tuple(k for p in parts for k in p.keys)
        extras = {k: torch.cat([p.extras[k] for p in parts])[order] for k in parts[0].extras}
        return Batch(images=torch.cat([p.images for p in parts])[order],
                     labels=torch.cat([p.labels for p in parts])[order],
                     skipped=sum(p.skipped for p in parts),
                     keys=tuple(keys[i] for i in order.tolist()) if keys else (), extras=extras)
