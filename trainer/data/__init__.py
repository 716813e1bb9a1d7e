"""Training data: where shards are (`sources`), reading one shard (`reader`, `tar`), the per-rank
stream (`stream`), the embedded datasets (`digits`) and the loader benchmark (`bench`).

`stream_for` is the one builder of every training stream: the main one, a recipe's extra streams
(CycleGAN's domain B) and the streams of families that decode their own samples (paired,
masked, captioned). Every stream so gets the same URL resolution (folders, manifests, http,
`pipe:`, `s3://`, `gs://`), error policy, retries, timeouts and exact resume. docs/DATA.md.
"""

from __future__ import annotations

from typing import Iterator, Optional

from trainer.data.sources import DataError, resolve_urls
from trainer.data.stream import Batch, SampleDecoder, StreamSpec, make_loader


def stream_for(cfg, *, rank: int, world_size: int, batch_size: int, start_batch: int,
               urls: Optional[str] = None, seed_offset: int = 0, labeled: Optional[bool] = None,
               decoder: Optional[SampleDecoder] = None) -> Iterator[Batch]:
    """One rank's endless stream of batches, configured from `cfg.data`.

    `urls` defaults to `data.urls`; `labeled` to `data.num_classes > 0`; `seed_offset` gives an
    extra stream an order of its own; `start_batch` is the number of batches this rank already
    consumed (resume). A spec that names nothing usable raises `DataError` naming the item.
    With `data.mix.fraction` > 0 the main stream mixes in `data.mix.urls` (trainer/data/mix.py)."""
    d = cfg.data
    mix = getattr(d, "mix", None)
    if urls is None and mix is not None and mix.fraction > 0:  # the main stream only, not a recipe's extras
        from trainer.data.mix import MIX_SEED_OFFSET, MixedStream, split_batch

        n_main, n_mix = split_batch(mix.fraction, batch_size)
        common = dict(rank=rank, world_size=world_size, start_batch=start_batch, labeled=labeled, decoder=decoder)
        main = stream_for(cfg, urls=d.urls, seed_offset=seed_offset, batch_size=n_main, **common) if n_main else None
        try:
            mixed = stream_for(cfg, urls=mix.urls, seed_offset=seed_offset + MIX_SEED_OFFSET, batch_size=n_mix,
                               **common)
        except DataError as exc:
            raise DataError(f"data.mix.urls: {exc}") from None
        return MixedStream(main, mixed, seed=cfg.run.seed + seed_offset, rank=rank, start_batch=start_batch)
    spec = StreamSpec(
        urls=tuple(resolve_urls(d.urls if urls is None else urls, timeout=d.timeout)),
        seed=cfg.run.seed + seed_offset, rank=rank, world_size=world_size, batch_size=batch_size,
        resolution=d.resolution, channels=d.channels,
        labeled=(d.num_classes > 0) if labeled is None else labeled, xflip=d.xflip,
        shuffle_buffer=d.shuffle_buffer, start_batch=start_batch, on_error=d.on_error, retries=d.retries,
        timeout=d.timeout, num_classes=d.num_classes, decoder=decoder)
    return make_loader(spec, d.workers)


__all__ = ["Batch", "SampleDecoder", "StreamSpec", "stream_for"]
