"""Streaming training data from WebDataset shards, deterministic and resumable.

Each rank runs `workers` loader processes; every (rank, worker) pair is one *slot* of
world_size * workers. Per epoch the shard list is permuted with the run seed; with at least
as many shards as slots each slot reads its own shards, otherwise every slot reads all shards
and keeps every n-th sample, so streams stay disjoint and no slot ever runs dry (no hang when
shards < ranks x workers). The stream is infinite (epochs are counted in images, not passes).

Exact resume: the stream is a pure function of (seed, slot), so a restart at batch b skips the
first b batches of raw samples *before* decoding them, which costs reading bytes only.
A resume with another world size (or worker count) changes the slots: the same start_batch
(global batches) then puts every new slot at the same epoch and fraction of it, in the new
layout's order; that is as close as the stream allows (docs/DATA.md).

Where the shards come from (`data.urls` kinds) is `trainer.data.sources`; reading one shard with
retries and the skip/fail policy is `trainer.data.reader`; this module shards, shuffles, decodes
and batches. See docs/DATA.md.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterator, Mapping, NamedTuple, Optional, Protocol

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from trainer.data.reader import ErrorPolicy, read_shard
from trainer.data.shared_batches import SharedBatchPool, private_batches
from trainer.data.sources import DataError

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "ppm", "bmp")
PREFETCH_BATCHES = 4  # per loader worker (the DataLoader's prefetch_factor)


class Batch(NamedTuple):
    images: torch.Tensor  # uint8 [B, C, H, W]
    labels: torch.Tensor  # int64 [B] (zeros when unlabeled)
    skipped: int  # corrupt samples skipped while assembling this batch
    keys: tuple[str, ...] = ()  # "shard-url#key" of each sample, for tracing and tests
    # A family decoder's other per-sample arrays, stacked: e.g. "lr" uint8 [B, C, h, w] (super
    # resolution), "mask" uint8 [B, 1, H, W] (inpainting), "tokens" int64 [B, L] (captions).
    extras: Mapping[str, torch.Tensor] = MappingProxyType({})


class SampleDecoder(Protocol):
    """Turns one raw shard sample into a family's arrays (picklable: loader workers run it).

    Returns a dict with "image" (uint8 [C, H, W]) and optionally "label" (int) and any other
    arrays, which reach the recipe as `Batch.extras`. `rng` is seeded from (run seed, slot,
    batch, position), so random crops, masks and degradations repeat exactly on resume. The stream
    mirrors every [C, H, W] array of a sample together when `data.xflip` draws a flip, so paired
    arrays stay aligned. Raise any exception for an unusable sample: the `data.on_error` policy
    then skips it (counted) or stops the run naming shard and key."""

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict[str, Any]: ...


@dataclass(frozen=True)
class StreamSpec:
    """What one rank's stream must produce."""

    urls: tuple[str, ...]
    seed: int
    rank: int
    world_size: int
    batch_size: int  # per rank
    resolution: int
    channels: int
    labeled: bool
    xflip: bool
    shuffle_buffer: int
    start_batch: int = 0  # batches this rank already consumed (resume)
    on_error: str = "skip"  # unreadable shard/sample: "skip" (counted, logged once per shard) or "fail"
    retries: int = 3  # reopen attempts for a remote (http/pipe) shard that breaks off
    timeout: float = 60.0  # seconds an http(s) read may stall before it counts as broken
    num_classes: int = 0  # > 0: labels must lie in [0, num_classes)
    decoder: Optional[SampleDecoder] = None  # a family's own decoding; None: image (+ label)


def _slot_shards(spec: StreamSpec, slot: int, slots: int, epoch: int) -> tuple[list[str], int, int]:
    """The shards this slot reads in `epoch`, and the (stride, offset) of the samples it keeps."""
    order = np.random.default_rng([spec.seed, epoch, 0x5A4D]).permutation(len(spec.urls))
    shuffled = [spec.urls[i] for i in order]
    if len(shuffled) >= slots:
        return shuffled[slot::slots], 1, 0
    return shuffled, slots, slot


def _raw_samples(urls: list[str], policy: ErrorPolicy, spec: StreamSpec | None = None) -> Iterator[dict]:
    """Undecoded samples {'__key__', '__url__', 'png', 'cls', ...} from the shards, in order."""
    retries, timeout = (spec.retries, spec.timeout) if spec is not None else (3, 60.0)
    for url in urls:
        yield from read_shard(url, policy, retries=retries, timeout=timeout)


def _shuffled(samples: Iterator[dict], buffer_size: int, rng: np.random.Generator) -> Iterator[dict]:
    buffer: list[dict] = []
    for sample in samples:
        if len(buffer) < buffer_size:
            buffer.append(sample)
            continue
        i = int(rng.integers(len(buffer)))
        buffer[i], sample = sample, buffer[i]
        yield sample
    rng.shuffle(buffer)
    yield from buffer


def decode_image(sample: dict, resolution: int, channels: int) -> np.ndarray:
    """Decode a sample's image to uint8 [C, resolution, resolution]."""
    ext = next((e for e in IMAGE_EXTENSIONS if e in sample), None)
    if ext is None:
        raise ValueError(f"sample {sample.get('__key__')} in {sample.get('__url__')} has no image "
                         f"(looked for {', '.join(IMAGE_EXTENSIONS)})")
    mode = "L" if channels == 1 else "RGB"
    with Image.open(io.BytesIO(sample[ext])) as img:
        if img.format == "JPEG" and img.size[0] >= 2 * resolution:
            # Progressive growing trains far below the stored size: let libjpeg scale down by
            # 1/2, 1/4 or 1/8 in the DCT domain (much faster than decoding every pixel); the
            # box filter below takes it the rest of the way.
            img.draft(mode, (resolution, resolution))
        if img.mode != mode:
            img = img.convert(mode)  # convert() also copies when the mode already matches
        if img.size != (resolution, resolution):
            # Progressive growing trains below the stored resolution; the box filter is the
            # area average, the right low-pass for integer factors.
            resample = Image.BOX if img.size[0] > resolution else Image.LANCZOS
            img = img.resize((resolution, resolution), resample)
        return _planes(img)


def _planes(img: Image.Image) -> np.ndarray:
    """uint8 [C, H, W] from an "L" or "RGB" image. PIL's per-band packers write each channel
    plane directly, at half the cost of numpy transposing its interleaved [H, W, C] pixels
    (0.04 vs 0.09 ms at 256 px: ~7% of the loader's time)."""
    width, height = img.size
    if img.mode == "L":
        return np.asarray(img, dtype=np.uint8).reshape(1, height, width)
    planes = np.empty((len(img.getbands()), height, width), np.uint8)
    for c, band in enumerate(img.getbands()):
        planes[c] = np.frombuffer(img.tobytes("raw", band), np.uint8).reshape(height, width)
    return planes


def decode_label(sample: dict, num_classes: int = 0) -> int:
    if "cls" not in sample:
        raise ValueError(f"sample {sample.get('__key__')} in {sample.get('__url__')} has no 'cls' label; "
                         "set data.num_classes=0 for unlabeled data")
    try:
        label = int(sample["cls"].decode().strip())
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"sample {sample.get('__key__')} in {sample.get('__url__')}: 'cls' is "
                         f"{sample['cls'][:20]!r}, not an integer label") from None
    if label < 0 or 0 < num_classes <= label:
        allowed = f"[0, data.num_classes={num_classes})" if num_classes else "[0, ...)"
        raise ValueError(f"sample {sample.get('__key__')} in {sample.get('__url__')}: label {label} is outside "
                         f"{allowed}; set data.num_classes to the dataset's class count")
    return label


class ShardStream(IterableDataset):
    """An infinite stream of decoded batches for one rank (split further across its workers)."""

    def __init__(self, spec: StreamSpec):
        super().__init__()
        if not spec.urls:
            raise DataError("data.urls expands to no shards")
        ErrorPolicy(spec.on_error)  # validate now, in the training process, not in a worker
        self.spec = spec

    def _worker(self) -> tuple[int, int]:
        info = get_worker_info()
        return (0, 1) if info is None else (info.id, info.num_workers)

    def raw_stream(self, slot: int, slots: int, policy: ErrorPolicy | None = None) -> Iterator[dict]:
        """This slot's undecoded samples, epoch after epoch, in their final (shuffled) order."""
        policy = policy if policy is not None else ErrorPolicy(self.spec.on_error)
        for epoch in itertools.count():
            urls, stride, offset = _slot_shards(self.spec, slot, slots, epoch)
            samples = itertools.islice(_raw_samples(urls, policy, self.spec), offset, None, stride)
            rng = np.random.default_rng([self.spec.seed, epoch, slot, 0x5348])
            produced = 0
            for sample in _shuffled(samples, self.spec.shuffle_buffer, rng):
                produced += 1
                yield sample
            if produced == 0:
                shown = ", ".join(urls[:3]) + (f" and {len(urls) - 3} more" if len(urls) > 3 else "")
                raise DataError(f"data slot {slot} of {slots} read no samples from {len(urls)} shard(s) ({shown}); "
                                "are the shards empty or unreadable? (see the warnings above)")

    def __iter__(self) -> Iterator[Batch]:
        spec = self.spec
        loader_worker, workers = self._worker()
        # The DataLoader asks its workers round-robin starting at worker 0, and in an unbroken
        # run logical worker w makes every batch b with b % workers == w. After a restart at
        # start_batch, loader worker 0 must therefore play logical worker start_batch % workers.
        worker = (loader_worker + spec.start_batch) % workers
        slot, slots = spec.rank * workers + worker, spec.world_size * workers
        done = len(range(worker, spec.start_batch, workers))
        policy = ErrorPolicy(spec.on_error)
        # In a worker process, batches are collated into reused shared memory (trainer.data.shared_batches).
        pool = SharedBatchPool(PREFETCH_BATCHES + 2) if get_worker_info() is not None else None
        raw = itertools.islice(self.raw_stream(slot, slots, policy), done * spec.batch_size, None)
        for local_batch in itertools.count(done):
            # Seeded per batch, so a resumed stream makes the same flips (and the same random
            # crops, masks, degradations of a family decoder) as an unbroken one.
            flips = np.random.default_rng([spec.seed, slot, local_batch, 0x464C]).random(spec.batch_size) < 0.5
            # Only a family decoder draws from a sample rng; making one costs ~3% of a 256 px decode.
            rngs = ([np.random.default_rng([spec.seed, slot, local_batch, i, 0x4443]) for i in range(spec.batch_size)]
                    if spec.decoder is not None else [None] * spec.batch_size)
            # Every batch takes exactly batch_size stream samples, so the resume skip above stays
            # exact even when some were unreadable: a skipped sample's place goes to a copy of a
            # readable one of the same batch. Only a batch with none readable reads further.
            decoded = [self._decode(next(raw), policy, rng) for rng in rngs]
            while not any(decoded):
                decoded = [self._decode(next(raw), policy, rng) for rng in rngs]
            good = [d for d in decoded if d is not None]
            filled = [d if d is not None else good[i % len(good)] for i, d in enumerate(decoded)]
            yield _collate(filled, flips if spec.xflip else None, policy.take(), pool)

    def _decode(self, sample: dict, policy: ErrorPolicy, rng: np.random.Generator | None) -> dict | None:
        """The decoder's arrays plus "__key__" ('url#key'), or None after the policy let an
        unreadable sample pass."""
        spec = self.spec
        try:
            if spec.decoder is not None:
                out = dict(spec.decoder(sample, rng))
            else:
                out = {"image": decode_image(sample, spec.resolution, spec.channels)}
                if spec.labeled:
                    out["label"] = decode_label(sample, spec.num_classes)
        except Exception as exc:  # truncated/corrupt image, bad label, a decoder's refusal: the policy decides
            policy(sample["__url__"], sample["__key__"], f"{type(exc).__name__}: {exc}")
            return None
        out["__key__"] = f"{sample['__url__']}#{sample['__key__']}"
        return out


def _mirror_into(out: np.ndarray, array: np.ndarray) -> None:
    """out[...] = array mirrored left-right (along its last axis).

    numpy reverses a uint8 row one byte at a time (0.07 ms for a 256 px RGB image). Reversing the
    order of its 8-byte words and then the bytes inside each word gives the same row in 0.02 ms.
    torch.flip is as fast with one thread but, with the process's intra-op threads on a busy
    2-core machine, took 1-7 ms per image (each call synchronises an OpenMP team)."""
    if array.dtype.itemsize == 1 and array.shape[-1] % 8 == 0 and array.flags.c_contiguous:
        words = out.view(np.uint64)
        words[...] = array.view(np.uint64)[..., ::-1]
        words.byteswap(inplace=True)
    else:
        out[...] = array[..., ::-1]


def _stacked(
    arrays: list[np.ndarray], flips: np.ndarray | None, pool: SharedBatchPool | None = None, name: str = ""
) -> torch.Tensor:
    """One batch tensor from per-sample arrays, each copied once into place, and mirrored
    left-right in that copy when it is image-like ([C, H, W]) and its sample drew a flip. (A
    mirror copy per image and then a stack cost ~5% of the loader's time at 256 px.) With a
    `pool` (in a worker process) the place is the pool's next shared buffer for `name`."""
    first = np.asarray(arrays[0])
    shape = (len(arrays),) + first.shape
    batch = torch.from_numpy(np.empty(shape, first.dtype)) if pool is None else pool.empty(name, shape, first.dtype)
    out = batch.numpy()
    mirror = flips is not None and first.ndim == 3
    for i, array in enumerate(arrays):
        if mirror and flips[i]:
            _mirror_into(out[i], np.asarray(array))
        else:
            out[i] = array
    return batch


def _collate(
    samples: list[dict], flips: np.ndarray | None, skipped: int, pool: SharedBatchPool | None = None
) -> Batch:
    """A Batch; `flips` (bool [B], or None without data.xflip) mirrors every image-like array of
    a sample together, so paired arrays (an image and its mask or low-res input) stay aligned."""
    images = _stacked([s["image"] for s in samples], flips, pool, "image")
    labels = _stacked([np.int64(s.get("label", 0)) for s in samples], None, pool, "label")
    extra_keys = [k for k in samples[0] if k not in ("image", "label", "__key__")]
    extras = {k: _stacked([s[k] for s in samples], flips, pool, k) for k in extra_keys}
    return Batch(images, labels, skipped, tuple(s["__key__"] for s in samples), extras)


def make_loader(spec: StreamSpec, workers: int) -> Iterator[Batch]:
    """An endless iterator of Batches for this rank."""
    dataset = ShardStream(spec)
    if workers == 0:
        return iter(dataset)
    # Pinned batches let to_training_tensor's non_blocking copy overlap with compute on a GPU.
    pin = torch.cuda.is_available()
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, persistent_workers=True,
                        prefetch_factor=PREFETCH_BATCHES, pin_memory=pin)
    # Pinning copies every batch out of the workers' shared rings already; otherwise copy here.
    return iter(loader) if pin else private_batches(iter(loader))


def loader_at(spec: StreamSpec, workers: int, *, batch: int, resolution: int | None = None) -> Iterator[Batch]:
    """The same stream from global batch `batch` on, optionally at another resolution.

    Progressive growing changes the training resolution mid-run: replacing the loader here keeps
    the sample order of the unbroken stream (the stream does not depend on the resolution), so
    only the resizing changes. Worker processes of the old loader end when it is dropped.
    """
    changes = {"start_batch": batch} if resolution is None else {"start_batch": batch, "resolution": resolution}
    return make_loader(dataclasses.replace(spec, **changes), workers)


def to_training_tensor(images: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 [0, 255] -> float in [-1, 1] on the training device."""
    return images.to(device, non_blocking=True).to(dtype) / 127.5 - 1.0
