"""write_shards: validate everything cheap up front, then encode and write shards, resumably.

Order of work, so that bad input never leaves output that looks finished:
  1. check the settings, scan SRC (headers only), resolve labels, check OUT is writable;
  2. remove the old manifest and any temp files (the folder now reads as "in progress");
  3. for each shard: skip it if its completion record verifies, else write it under a temp
     name and rename it when complete;
  4. remove shards left over from an earlier run with more shards, write the manifest last.
Unreadable images (scan) and images that fail to decode (step 3) are left out and listed with
on_error="skip" (the default: one truncated JPEG among a million scraped files must not stop the
write), or stop the run with on_error="stop", which removes what it wrote and raises ShardError.
An OUT that already holds a finished dataset, or files that are not shards, is refused unless
overwrite=True; an OUT holding an unfinished run of this writer is resumed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re

import PIL
from tqdm import tqdm

from trainer.text.tokenizer import count_words

from .captions import resolve_captions
from .crops import MULTI_CROPS, WHOLE_IMAGE_CROPS, CroppedSource, CropPlan, check_sizes
from .encode import EXTENSIONS, GRAY_MODES, SUPPORTED_MODES, EncodeSettings
from .errors import ShardError, problem
from .labels import LABEL_MODES, Labels, resolve_labels
from .manifest import MANIFEST_NAME, SHARD_PATTERN, Manifest, ShardInfo, brace_pattern, write_manifest
from .pipeline import Encoder
from .progress import PROGRESS_DIR, finished_shard, record_span, remove_shard, write_record
from .sources import Item, Scan, Source, open_source
from .tarshard import ShardTar, sample_size

DEFAULT_MAXCOUNT = 10_000
DEFAULT_MAXSIZE = 1 << 30  # 1 GiB: large enough for few files, small enough to shuffle well
DEFAULT_QUALITY = {"png": None, "jpg": 95, "webp": 100}
CROPS = ("center", "none") + WHOLE_IMAGE_CROPS + MULTI_CROPS  # the last three: crops.py
DEFAULT_CROPS_PER_IMAGE = 4  # --crop random
# After the first decode failure, look at this many more results so the error lists several.
EXTRA_ERRORS_WINDOW = 64
ON_ERROR = ("skip", "stop")
SKIPPED_NAME = "skipped.txt"  # OUT/skipped.txt: one "key: reason" line per image left out


def check_settings(
    *,
    resolution,
    crop,
    fmt,
    quality,
    labels,
    maxcount,
    maxsize,
    workers,
    channels,
    crops_per_image=DEFAULT_CROPS_PER_IMAGE,
) -> int | None:
    """Validate the flags (errors name the flag); returns the effective quality."""
    if not isinstance(crops_per_image, int) or crops_per_image < 1:
        raise ShardError(f"--crops-per-image {crops_per_image}: must be >= 1")
    if not isinstance(resolution, int) or resolution < 4 or resolution & (resolution - 1):
        raise ShardError(f"--resolution {resolution}: must be a power of two >= 4 (e.g. 32, 256, 1024)")
    if crop not in CROPS:
        raise ShardError(f"--crop {crop!r}: must be one of {', '.join(CROPS)}")
    if fmt not in EXTENSIONS:
        raise ShardError(f"--format {fmt!r}: must be one of {', '.join(EXTENSIONS)}")
    if quality is None:
        quality = DEFAULT_QUALITY[fmt]
    elif fmt == "png":
        raise ShardError("--quality has no effect with --format png (lossless); drop the flag")
    elif not 1 <= quality <= 100:
        raise ShardError(f"--quality {quality}: must be in 1..100")
    if labels not in LABEL_MODES and not str(labels).lower().endswith(".json"):
        raise ShardError(f"--labels {labels!r}: use auto, none, from-folder-names or a path to a .json file")
    if maxcount < 1:
        raise ShardError(f"--maxcount {maxcount}: must be >= 1")
    if maxsize < 1:
        raise ShardError(f"--maxsize {maxsize}: must be >= 1 byte")
    if workers < 1:
        raise ShardError(f"--workers {workers}: must be >= 1")
    if channels not in ("auto", 1, 3):
        raise ShardError(f"--channels {channels!r}: must be auto, 1 or 3")
    return quality


def _scan(src: Source, on_error: str = "stop") -> Scan:
    try:
        scan = src.scan()
    except ValueError as e:
        raise ShardError(str(e)) from None
    if scan.unreadable and (on_error == "stop" or not scan.items):
        raise problem(
            f"files under {src.path} are not readable images",
            scan.unreadable,
            "Remove them or re-export them as jpg/png/webp/bmp"
            + ("" if on_error == "stop" else " (none was readable, so there is nothing to write)"),
        )
    if not scan.items:
        raise ShardError(
            f"SRC {src.path!r} holds no images (looked for every format Pillow reads: .jpg .png .webp .tif "
            ".gif .bmp ..., recursively, skipping hidden files); point SRC at the folder that has them"
        )
    unsupported = [f"{it.key}: mode {it.mode}" for it in scan.items if it.mode not in SUPPORTED_MODES]
    if unsupported:
        raise problem(
            "images have a pixel format that cannot be converted to 8-bit gray or RGB",
            unsupported,
            "Convert them to 8/16-bit gray or RGB first",
        )
    return scan


def _check_square(items: list[Item]) -> None:
    bad = [f"{it.key}: {it.width}x{it.height}" for it in items if it.width != it.height]
    if bad:
        raise problem(
            "images are not square, and --crop none keeps the whole image",
            bad,
            "Use --crop center, or crop them to squares first",
        )


def _prepare_out(out_dir: str, overwrite: bool = False) -> None:
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ShardError(f"OUT {out_dir!r} exists and is not a folder; pass a folder path")
    if os.path.isdir(out_dir) and not overwrite:
        entries = set(os.listdir(out_dir))
        unfinished = PROGRESS_DIR in entries and MANIFEST_NAME not in entries  # an interrupted run: resume it
        if entries and not unfinished:
            what = "a finished shard set (manifest.json)" if MANIFEST_NAME in entries else f"{len(entries)} file(s)"
            raise ShardError(
                f"OUT {out_dir!r} is not empty: it holds {what}; pass --overwrite to replace the "
                "shards in it, or choose an empty folder (an interrupted run is resumed by itself)"
            )
    probe = os.path.join(out_dir, ".write-test")
    try:
        os.makedirs(out_dir, exist_ok=True)
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as e:
        raise ShardError(f"OUT {out_dir!r} is not writable ({e.strerror}); pick a folder you can write to") from None


def _fingerprint(args: dict, scan: Scan, labels: Labels) -> str:
    """Identity of inputs + settings; a finished shard is reused only under the same one."""
    h = hashlib.sha256()
    h.update(json.dumps({"args": args, "pillow": PIL.__version__}, sort_keys=True).encode())
    for it, label in zip(scan.items, labels.values):
        h.update(f"\n{it.key}\t{label}".encode())
    for line in scan.stamp:
        h.update(f"\n{line}".encode())
    return h.hexdigest()


def _clean_out(out_dir: str) -> None:
    """The old manifest and temp files go: until the new manifest exists, nothing is final."""
    for path in [os.path.join(out_dir, MANIFEST_NAME)] + glob.glob(os.path.join(out_dir, ".shard-*.tar.partial")):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _write_skipped(out_dir: str, skipped: list[str]) -> None:
    path = os.path.join(out_dir, SKIPPED_NAME)
    if skipped:
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(f"{line}\n" for line in skipped))
    elif os.path.exists(path):
        os.remove(path)


def _remove_extra_shards(out_dir: str, num_shards: int) -> None:
    for path in glob.glob(os.path.join(out_dir, "shard-*.tar")):
        m = re.fullmatch(r"shard-(\d{6})\.tar", os.path.basename(path))
        if m and int(m.group(1)) >= num_shards:
            remove_shard(out_dir, os.path.basename(path))


class _Run:
    """State of one writing pass: where shards go, what is done, what to undo on bad input."""

    def __init__(
        self, out_dir, src, scan, labels, settings, fingerprint, maxcount, maxsize, captions=None, on_error="stop"
    ):
        self.out_dir, self.src, self.scan, self.labels = out_dir, src, scan, labels
        self.on_error = on_error
        self.skipped: list[str] = []  # "key: reason" of every image left out (on_error="skip")
        self._span_skipped: list[str] = []  # those of the shard being written (kept in its record)
        self.captions = captions  # one text (captions one per line) or None per item; None: uncaptioned
        self.settings, self.fingerprint = settings, fingerprint
        self.maxcount, self.maxsize = maxcount, maxsize
        self.ext = EXTENSIONS[settings.fmt]
        self.shards: list[ShardInfo] = []
        self.written: list[str] = []

    def fields(self, index: int, data: bytes) -> dict[str, bytes]:
        fields = {self.ext: data}
        label = self.labels.values[index]
        if label is not None:
            fields["cls"] = str(label).encode("ascii")
        if self.captions is not None and self.captions[index] is not None:
            fields["txt"] = self.captions[index].encode("utf-8")  # the WebDataset caption convention
        meta = self.scan.items[index].meta
        fields["json"] = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return fields

    def commit(self, tar: ShardTar, first: int, end: int) -> None:
        """first..end-1: the items this shard covers (its samples plus the items skipped among them)."""
        size, sha = tar.commit()
        info = ShardInfo(os.path.basename(tar.final_path), first, tar.count, size, sha)
        write_record(self.out_dir, info, self.fingerprint, end=end, skipped=self._span_skipped)
        self._span_skipped = []
        self.shards.append(info)
        self.written.append(info.name)

    def next_name(self) -> str:
        return SHARD_PATTERN.format(len(self.shards))

    def encode_from(self, enc: Encoder, start: int, bar) -> int:
        """Write shards from sample `start` until the end or a verified finished shard; the
        index where writing stopped."""
        n = len(self.scan.items)
        results = enc.map((i, self.src.payload(i)) for i in range(start, n))
        tar = ShardTar(os.path.join(self.out_dir, self.next_name()))
        first = start
        try:
            for index, data, err in results:
                if err is not None and self.on_error == "stop":
                    self._fail(index, err, results)
                if err is not None:
                    self.skipped.append(f"{self.scan.items[index].key}: {err}")
                    self._span_skipped.append(self.skipped[-1])
                    bar.update(1)
                    continue
                fields = self.fields(index, data)
                extra = sample_size(fields)
                if tar.count and (tar.count >= self.maxcount or tar.size_with(extra) > self.maxsize):
                    self.commit(tar, first, index)
                    first = index
                    tar = None
                    if finished_shard(self.out_dir, self.next_name(), index, self.fingerprint):
                        return index  # the caller re-verifies and skips it
                    tar = ShardTar(os.path.join(self.out_dir, self.next_name()))
                tar.add("%08d" % index, fields)
                bar.update(1)
            if tar.count or not self.shards:
                self.commit(tar, first, n)
            else:  # only skipped images after the last shard: no empty shard
                tar.abort()
            tar = None
            return n
        finally:
            if tar is not None:
                tar.abort()
            results.close()

    def _fail(self, index: int, err: str, results) -> None:
        errors = [f"{self.scan.items[index].key}: {err}"]
        for k, (i, _, e) in enumerate(results):
            if e is not None:
                errors.append(f"{self.scan.items[i].key}: {e}")
            if k >= EXTRA_ERRORS_WINDOW:
                break
        for name in self.written:
            remove_shard(self.out_dir, name)
        raise problem(
            "images could not be converted",
            errors,
            "Writing stopped at the first failures (later files were not checked); fix or remove them and rerun",
        )


def write_shards(
    source,
    out_dir,
    *,
    resolution: int,
    crop: str = "center",
    fmt: str = "png",
    quality: int | None = None,
    labels: str = "auto",
    maxcount: int = DEFAULT_MAXCOUNT,
    maxsize: int = DEFAULT_MAXSIZE,
    workers: int = 1,
    channels: str | int = "auto",
    progress: bool = False,
    crops_per_image: int = DEFAULT_CROPS_PER_IMAGE,
    crop_seed: int = 0,
    captions: str = "auto",
    on_error: str = "skip",
    overwrite: bool = False,
) -> Manifest:
    """Convert the dataset at `source` into OUT/shard-NNNNNN.tar + OUT/manifest.json.

    Reruns with the same inputs and settings skip shards already finished. Raises ShardError for
    bad settings or input, leaving no finished-looking output behind. With workers > 1 the
    encoders are spawned processes, so a calling script needs the `if __name__ == "__main__":`
    guard. `crop` full/tiled/random keep pixels unresized (crops.py); random draws
    `crops_per_image` crops per image from `crop_seed`. `on_error`: skip (leave unreadable or
    undecodable images out, listed in the manifest's `skipped` and OUT/skipped.txt) or stop.
    """
    if on_error not in ON_ERROR:
        raise ShardError(f"--on-error {on_error!r}: must be one of {', '.join(ON_ERROR)}")
    source, out_dir = os.fspath(source), os.fspath(out_dir)
    quality = check_settings(
        resolution=resolution,
        crop=crop,
        fmt=fmt,
        quality=quality,
        labels=labels,
        maxcount=maxcount,
        maxsize=maxsize,
        workers=workers,
        channels=channels,
        crops_per_image=crops_per_image,
    )
    src = open_source(source)
    try:
        scan = _scan(src, on_error)
        unreadable = list(scan.unreadable)
        if crop == "none":
            _check_square(scan.items)
        if crop in WHOLE_IMAGE_CROPS + MULTI_CROPS:
            check_sizes(scan.items, resolution, crop)
        lab = resolve_labels(
            labels, scan.items, source_kind=scan.kind, source_has_labels=scan.has_labels, source_path=source
        )
        cap = resolve_captions(captions, scan.items, source_kind=scan.kind, source_path=source)
        if cap.captioned and crop in MULTI_CROPS:
            raise ShardError(
                f"--captions with --crop {crop}: several crops of one image would share its caption; "
                "use --crop center/none/full, or --captions none"
            )
        if channels == "auto":
            channels = 1 if all(it.mode in GRAY_MODES for it in scan.items) else 3
        args = {
            "resolution": resolution,
            "crop": crop,
            "format": fmt,
            "quality": quality,
            "labels": labels,
            "maxcount": maxcount,
            "maxsize": maxsize,
            "channels": channels,
        }
        if crop == "random":
            args.update(crops_per_image=crops_per_image, crop_seed=crop_seed)
        if cap.captioned:  # only then, so uncaptioned sets keep their fingerprints
            digest = hashlib.sha256("\n\0".join(cap.values).encode()).hexdigest()
            args.update(captions=captions, captions_sha256=digest)
        if crop in MULTI_CROPS:  # each crop becomes an item of its own; the rest runs unchanged
            plan = CropPlan(scan, lab, mode=crop, size=resolution, count=crops_per_image, seed=crop_seed)
            scan, lab, src = plan.scan, plan.labels, CroppedSource(src, plan)
        _prepare_out(out_dir, overwrite)
        settings = EncodeSettings(resolution, crop, fmt, quality, channels)
        run = _Run(
            out_dir,
            src,
            scan,
            lab,
            settings,
            _fingerprint(args, scan, lab),
            maxcount,
            maxsize,
            captions=cap.values if cap.captioned else None,
            on_error=on_error,
        )
        _clean_out(out_dir)
        n = len(scan.items)
        with (
            Encoder(settings, workers) as enc,
            tqdm(total=n, unit="img", disable=not progress, desc="shards", dynamic_ncols=True) as bar,
        ):
            start = 0
            while start < n:
                done = finished_shard(out_dir, run.next_name(), start, run.fingerprint)
                if done is not None:
                    run.shards.append(done)
                    end, skipped = record_span(out_dir, done)
                    run.skipped += skipped
                    bar.update(end - start)
                    start = end
                else:
                    start = run.encode_from(enc, start, bar)
        _remove_extra_shards(out_dir, len(run.shards))
        skipped = unreadable + run.skipped
        if len(run.skipped) >= n:
            for name in run.written:
                remove_shard(out_dir, name)
            raise problem(
                "images could not be converted, which is all of them",
                skipped,
                "Nothing was written; fix the images or the settings and rerun",
            )
        _write_skipped(out_dir, skipped)
        manifest = Manifest(
            num_samples=n - len(run.skipped),
            skipped=skipped,
            resolution=resolution,
            channels=channels,
            format=run.ext,
            num_classes=lab.num_classes,
            class_names=lab.class_names,
            labelled=lab.num_classes > 0 or any(v is not None for v in lab.values),
            urls=brace_pattern(len(run.shards)),
            shards=run.shards,
            args=args,
            source=source,
            encoder={"pillow": PIL.__version__},
            captioned=cap.captioned,
            caption_words=count_words(cap.values) if cap.captioned else None,
        )
        write_manifest(out_dir, manifest)
        return manifest
    finally:
        src.close()
