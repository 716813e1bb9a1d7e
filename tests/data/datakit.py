"""Real inputs for the loader tests: tar shards written with tarfile, and a real HTTP server on
127.0.0.1 that can be told to fail a request (HTTP 500, or a body cut off mid-shard).

Imported by name (`from datakit import ...`): pyproject puts tests/data on pytest's pythonpath."""

from __future__ import annotations

import functools
import http.server
import io
import tarfile
import threading
from pathlib import Path

import numpy as np
from PIL import Image


def image_bytes(index: int, fmt: str = "PNG", size: int = 8) -> bytes:
    """A gray image whose first two pixels encode `index` (unique up to 65535 samples)."""
    array = np.full((size, size), 128, np.uint8)
    array[0, 0], array[0, 1] = index % 256, index // 256
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    return buf.getvalue()


def index_of(image: np.ndarray) -> int:
    """Inverse of image_bytes for a decoded uint8 [C, H, W] (lossless formats)."""
    return int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])


def write_tar(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            for ext, payload in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return path


def write_index_shards(folder: Path, shards: int, per_shard: int, classes: int = 3) -> list[Path]:
    """shards x per_shard samples; sample i is image_bytes(i) with label i % classes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(shards):
        samples = [(f"{i:06d}", {"png": image_bytes(i), "cls": str(i % classes).encode()})
                   for i in range(s * per_shard, (s + 1) * per_shard)]
        paths.append(write_tar(folder / f"shard-{s:06d}.tar", samples))
    return paths


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; `faults[path]` is a list of actions for the next requests of that path."""

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        actions = self.server.faults.get(self.path)
        action = actions.pop(0) if actions else None
        if action == "500":
            self.send_error(500, "injected failure")
            return
        if action == "cut":
            data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])  # then close: the client sees a short body
            self.close_connection = True
            return
        super().do_GET()


class ShardServer:
    def __init__(self, folder: Path):
        handler = functools.partial(_Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.faults, self.httpd.requests = {}, []
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def faults(self) -> dict[str, list[str]]:
        return self.httpd.faults

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
