"""Loader throughput alone: images/s of `make_loader` with 0, 1, 2 workers, from local files and
over HTTP, next to the raw PIL decode rate of the same JPEGs in a plain loop (the ceiling).

    python -m trainer.data.bench [--resolutions 256 1024] [--workers 0 1 2] [--out bench/data.json]
    python -m trainer.data.bench --layers --resolutions 256 --out bench/data-layers.json

The shards are synthetic JPEGs (quality 95, 4:4:4, as `hiresgan shards --format jpg` writes
them) of smooth colour fields plus texture, sized like photo datasets. HTTP shards come from a
`python -m http.server` child process on 127.0.0.1, so serving does not share the loader's GIL.
Every loader rate is measured after a warm-up batch per worker (process start and first reads
excluded), over at least --seconds. Raw decode and loader runs alternate --repeats times per
setting and each rate pools its runs, so drifts of the machine's speed hit both alike.
The load average is recorded too: on a shared machine other work lowers every number.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from trainer.telemetry.device_info import device_name
from trainer.data.reader import ErrorPolicy, read_shard
from trainer.data.stream import ShardStream, StreamSpec, decode_image, make_loader


def synthetic_jpegs(resolution: int, count: int, seed: int = 0) -> list[bytes]:
    """Smooth colour fields + texture at three scales + slight noise: about 35 KiB at 256x256 and
    500 KiB at 1024x1024 at quality 95, in the range of photo datasets (pure noise would make
    entropy decoding dominate and overstate the decode cost)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:resolution, 0:resolution] / resolution
    out = []
    for _ in range(count):
        a, b, c = rng.uniform(0, 6.3, 3)
        field = np.stack([np.sin(a * 3 * xx + b), np.cos(b * 3 * yy + c), np.sin(c * 2 * (xx + yy) + a)], -1)
        texture = sum(np.kron(rng.normal(0, 8, (resolution // s, resolution // s)), np.ones((s, s)))
                      for s in (2, 8, 32) if resolution >= s)
        noise = rng.normal(0, 2, (resolution, resolution, 3))
        array = np.clip(127.5 + 100 * field + texture[..., None] + noise, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="JPEG", quality=95, subsampling=0)
        out.append(buf.getvalue())
    return out


def write_shards(folder: Path, jpegs: list[bytes], shards: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s, chunk in enumerate(np.array_split(np.arange(len(jpegs)), shards)):
        path = folder / f"shard-{s:06d}.tar"
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in chunk:
                for ext, payload in (("jpg", jpegs[i]), ("cls", b"0")):
                    info = tarfile.TarInfo(f"{int(i):08d}.{ext}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
        paths.append(str(path))
    return paths


def raw_decode(jpegs: list[bytes], seconds: float) -> tuple[int, float]:
    """PIL decode to a uint8 array in a plain loop, repeated for at least `seconds`:
    (images, seconds taken)."""
    done, start = 0, time.perf_counter()
    while True:
        for data in jpegs:
            with Image.open(io.BytesIO(data)) as img:
                np.asarray(img.convert("RGB"))
            done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done, elapsed


def raw_decode_rate(jpegs: list[bytes], seconds: float) -> float:
    done, elapsed = raw_decode(jpegs, seconds)
    return done / elapsed


def load(urls: list[str], *, resolution: int, workers: int, batch: int, seconds: float) -> tuple[int, float]:
    """`make_loader` timed over at least `seconds` after a warm-up batch per worker:
    (images, seconds taken)."""
    spec = StreamSpec(urls=tuple(urls), seed=0, rank=0, world_size=1, batch_size=batch, resolution=resolution,
                      channels=3, labeled=True, xflip=True, shuffle_buffer=64)
    loader = make_loader(spec, workers)
    for _ in range(max(workers, 1)):  # warm-up: worker start and the first shard reads
        next(loader)
    done, start = 0, time.perf_counter()
    while True:
        next(loader)
        done += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    del loader  # stops the DataLoader's worker processes
    return done, elapsed


def paired_rates(jpegs: list[bytes], urls: list[str], *, resolution: int, workers: int, args) -> tuple[float, float]:
    """(raw decode, loader) images/s, pooled over `args.repeats` alternating runs of each.

    On a VM the rate of the same loop drifts by 20-30% within seconds (other tenants, clock
    changes). Alternating the two loops and pooling each one's images and seconds exposes both to
    the same drift, so their ratio holds still even when the absolute rates do not.
    """
    raw, loader = np.zeros(2), np.zeros(2)  # (images, seconds)
    for _ in range(args.repeats):
        raw += raw_decode(jpegs, args.seconds)
        loader += load(urls, resolution=resolution, workers=workers, batch=args.batch, seconds=args.seconds)
    return raw[0] / raw[1], loader[0] / loader[1]


class HttpServer:
    """`python -m http.server` in a child process, serving a folder on 127.0.0.1."""

    def __init__(self, folder: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                                     cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("bench-data: the local HTTP server did not start within 30 s")

    def close(self):
        self.proc.terminate()
        self.proc.wait()


def bench_resolution(resolution: int, images: int, args, scratch: Path) -> list[dict]:
    jpegs = synthetic_jpegs(resolution, images)
    folder = scratch / f"jpg{resolution}"
    paths = write_shards(folder, jpegs, shards=args.shards)
    raw = raw_decode_rate(jpegs, args.seconds)
    print(f"{resolution}px: raw PIL decode {raw:.1f} images/s "
          f"({len(jpegs)} JPEGs, {sum(map(len, jpegs)) / len(jpegs) / 1024:.0f} KiB each)", flush=True)
    batch = args.batch
    rows = []
    server = HttpServer(folder) if "http" in args.sources else None
    try:
        for source in args.sources:
            urls = paths if source == "local" else [f"{server.base}/{Path(p).name}" for p in paths]
            for workers in args.workers:
                raw, rate = paired_rates(jpegs, urls, resolution=resolution, workers=workers, args=args)
                per_worker = rate / max(workers, 1)
                rows.append({"resolution": resolution, "train_resolution": resolution, "source": source,
                             "workers": workers, "batch": batch, "repeats": args.repeats,
                             "images_per_second": round(rate, 1),
                             "images_per_second_per_worker": round(per_worker, 1),
                             "raw_decode_images_per_second": round(raw, 1),
                             "per_worker_vs_raw_decode": round(per_worker / raw, 3)})
                print(f"  {source:5s} workers={workers}: {rate:7.1f} images/s "
                      f"({per_worker:.1f} per worker = {per_worker / raw:.0%} of raw decode {raw:.1f})", flush=True)
        if resolution >= 512:  # progressive growing / low-res training from high-res shards: JPEG draft decode
            small = resolution // 4
            raw, rate = paired_rates(jpegs, paths, resolution=small, workers=0, args=args)
            rows.append({"resolution": resolution, "train_resolution": small, "source": "local", "workers": 0,
                         "batch": batch, "repeats": args.repeats, "images_per_second": round(rate, 1),
                         "images_per_second_per_worker": round(rate, 1), "raw_decode_images_per_second": round(raw, 1),
                         "per_worker_vs_raw_decode": round(rate / raw, 3)})
            print(f"  local workers=0 at {small}px: {rate:7.1f} images/s ({rate / raw:.0%} of the full-size "
                  f"raw decode {raw:.1f}: draft decoding)", flush=True)
    finally:
        if server is not None:
            server.close()
    return rows


def layer_rates(resolution: int, images: int, args, scratch: Path) -> dict[str, float]:
    """Where the loader's time goes, layer by layer, each as a fraction of the raw loop: decoding
    in-memory JPEGs with `decode_image`, plus reading them from tar shards, plus the epoch and
    shuffle-buffer stream, plus the batch assembly (the whole main-process loader). Rates are
    pooled over `args.repeats` * 4 alternating runs of `args.seconds` / 2 each."""
    jpegs = synthetic_jpegs(resolution, images)
    paths = write_shards(scratch / f"layers{resolution}", jpegs, shards=args.shards)
    spec = StreamSpec(urls=tuple(paths), seed=0, rank=0, world_size=1, batch_size=args.batch,
                      resolution=resolution, channels=3, labeled=True, xflip=True, shuffle_buffer=64)
    raw_samples = ShardStream(spec).raw_stream(0, 1)
    batches = iter(ShardStream(spec))

    def raw():
        return raw_decode(jpegs, 0)[0]

    def decode():
        for data in jpegs:
            decode_image({"jpg": data}, resolution, 3)
        return len(jpegs)

    def tar():
        done = 0
        for path in paths:
            for sample in read_shard(path, ErrorPolicy()):
                decode_image(sample, resolution, 3)
                done += 1
        return done

    def stream():
        for _ in range(len(jpegs)):
            decode_image(next(raw_samples), resolution, 3)
        return len(jpegs)

    def loader():
        for _ in range(len(jpegs) // args.batch):
            next(batches)
        return len(jpegs) // args.batch * args.batch

    layers = {"raw PIL loop": raw, "decode_image": decode, "+ tar shards": tar, "+ shuffle stream": stream,
              "+ batches (loader)": loader}
    pooled = {name: np.zeros(2) for name in layers}
    for _ in range(args.repeats * 4):
        for name, run in layers.items():
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds / 2:
                done += run()
            pooled[name] += (done, time.perf_counter() - start)
    rates = {name: n / t for name, (n, t) in pooled.items()}
    print(f"{resolution}px layers: " + ", ".join(f"{name} {rate:.0f}/s ({rate / rates['raw PIL loop']:.0%})"
                                                 for name, rate in rates.items()), flush=True)
    return {name: round(rate, 1) for name, rate in rates.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.data.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--images", type=int, nargs="+", default=[256, 48],
                        help="synthetic images per resolution (one number, or one per resolution)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sources", nargs="+", choices=("local", "http"), default=["local", "http"])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="minimum duration of each timed loop (raw decode and loader)")
    parser.add_argument("--repeats", type=int, default=4,
                        help="alternating raw/loader runs per setting, pooled into each rate")
    parser.add_argument("--layers", action="store_true",
                        help="instead of the loader table: the rate after each layer of the main-process loader")
    parser.add_argument("--out", type=Path, default=Path("bench/data.json"))
    args = parser.parse_args(argv)
    counts = args.images if len(args.images) == len(args.resolutions) else args.images[:1] * len(args.resolutions)
    scratch = Path(tempfile.mkdtemp(prefix="hiresgan-bench-data-"))
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    try:
        if args.layers:
            rows = [{"resolution": res, "layer_images_per_second": layer_rates(res, n, args, scratch)}
                    for res, n in zip(args.resolutions, counts)]
        else:
            rows = [row for res, n in zip(args.resolutions, counts) for row in bench_resolution(res, n, args, scratch)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {"date": started, "device": device_name(), "cpu_count": os.cpu_count(),
              "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()],
              "python": sys.version.split()[0], "pillow": Image.__version__,
              "command": "python -m trainer.data.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
              "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"bench-data: saved to {args.out} (load average before {load_before[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
