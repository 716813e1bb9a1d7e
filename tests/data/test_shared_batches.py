"""Worker batches travel through reused shared-memory rings: what the training process holds
must never change under it, however many batches it keeps."""

import numpy as np
import pytest
import torch
from datakit import write_index_shards

from trainer.data.shared_batches import SharedBatchPool
from trainer.data.stream import PREFETCH_BATCHES, StreamSpec, decode_image, make_loader


def test_pool_hands_out_its_shared_buffers_in_turn():
    pool = SharedBatchPool(3)
    first = [pool.empty("image", (2, 3, 4, 4), np.uint8) for _ in range(3)]
    assert all(t.is_shared() and t.dtype == torch.uint8 and t.shape == (2, 3, 4, 4) for t in first)
    assert len({t.data_ptr() for t in first}) == 3
    again = pool.empty("image", (2, 3, 4, 4), np.uint8)
    assert again.data_ptr() == first[0].data_ptr()  # the ring came round
    other = pool.empty("mask", (2, 3, 4, 4), np.uint8)  # another array: its own ring
    assert other.data_ptr() not in {t.data_ptr() for t in first}
    with pytest.raises(ValueError, match="at least 2 slots"):
        SharedBatchPool(1)


class _ImageAndNegative:
    """A family decoder: the image plus one derived array, which reaches Batch.extras."""

    def __call__(self, sample, rng):
        image = decode_image(sample, 8, 1)
        return {"image": image, "negative": 255 - image, "label": int(sample["cls"])}


@pytest.mark.parametrize("decoder", [None, _ImageAndNegative()])
def test_held_worker_batches_equal_the_main_process_stream(tmp_path, decoder):
    urls = tuple(str(p) for p in write_index_shards(tmp_path, shards=3, per_shard=20))
    spec = StreamSpec(urls=urls, seed=5, rank=0, world_size=1, batch_size=4, resolution=8, channels=1,
                      labeled=True, xflip=True, shuffle_buffer=8, decoder=decoder)
    count = 4 * (PREFETCH_BATCHES + 2) + 1  # the ring comes round four times
    direct = make_loader(spec, 0)
    expected = [next(direct) for _ in range(count)]
    via_worker = make_loader(spec, 1)
    held = [next(via_worker) for _ in range(count)]  # all kept alive while the worker runs on
    for a, b in zip(expected, held):
        assert list(a.keys) == list(b.keys)
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert set(a.extras) == set(b.extras) and all(torch.equal(a.extras[k], b.extras[k]) for k in a.extras)
        assert not b.images.is_shared()  # a private copy, not the worker's ring buffer
