"""Paired shards for image-to-image training (pix2pix): `hiresgan shards INPUTS OUT --paired TARGETS`.

Files of INPUTS and TARGETS pair up by their path relative to the folder, without the extension
(`edges/cat/01.png` pairs with `photos/cat/01.jpg`). Each pair becomes one sample:

| member | content |
|---|---|
| `00000042.a.png` | the input (e.g. an edge map), `--input-channels` channels |
| `00000042.b.png` | the target, `--channels` channels |
| `00000042.json`  | `{"path": "cat/01"}` |

Both images of a pair get the same centre square crop and are resized to `--resolution`. A bad
pair (one side missing, an unreadable file, input and target of different sizes, an input with
the wrong channel count) is reported in one line naming the file and left out; the rest of the
folder is still written, and the command exits 1 so scripts notice.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import PIL
from PIL import Image

from .errors import ShardError
from .manifest import SHARD_PATTERN, Manifest, ShardInfo, brace_pattern, write_manifest
from .tarshard import ShardTar

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
GRAY = ("1", "L", "LA", "I", "I;16")


@dataclass
class PairedResult:
    manifest: Manifest | None
    errors: list[str] = field(default_factory=list)  # one line per pair left out, naming its file


def _files(folder: Path, flag: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise ShardError(f"{flag} '{folder}' is not a folder of images")
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.suffix.lower() in SUFFIXES and not any(part.startswith(".") for part in rel.parts):
            found[rel.with_suffix("").as_posix()] = path
    return found


def _channels(path: Path) -> int:
    with Image.open(path) as img:
        return 1 if img.mode in GRAY else 3


def _square(img: Image.Image) -> Image.Image:
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def _encode(path: Path, channels: int, resolution: int) -> tuple[bytes, tuple[int, int]]:
    with Image.open(path) as img:
        size = img.size
        img = img.convert("L" if channels == 1 else "RGB")
        img = _square(img)
        if img.size != (resolution, resolution):
            img = img.resize((resolution, resolution), Image.LANCZOS)
        out = io.BytesIO()
        img.save(out, format="PNG", compress_level=6)
    return out.getvalue(), size


def write_paired_shards(
    inputs, targets, out_dir, *, resolution: int, channels="auto", input_channels="auto", maxcount: int = 10_000
) -> PairedResult:
    """Write OUT/shard-*.tar + manifest.json from matching files of `inputs` and `targets`."""
    if resolution < 4 or resolution & (resolution - 1):
        raise ShardError(f"--resolution {resolution}: must be a power of two >= 4 (e.g. 32, 256, 1024)")
    a_files, b_files = _files(Path(inputs), "SRC"), _files(Path(targets), "--paired")
    errors = [f"{a_files[k]}: no target named '{k}.*' in {targets}" for k in sorted(set(a_files) - set(b_files))]
    errors += [f"{b_files[k]}: no input named '{k}.*' in {inputs}" for k in sorted(set(b_files) - set(a_files))]
    keys = sorted(set(a_files) & set(b_files))
    probed = {}
    for k in keys:
        try:
            probed[k] = (_channels(a_files[k]), _channels(b_files[k]))
        except (OSError, ValueError) as exc:
            errors.append(f"{a_files[k]} / {b_files[k]}: not a readable image ({exc})")
    keys = [k for k in keys if k in probed]
    if channels == "auto":
        channels = 1 if all(b == 1 for _, b in probed.values()) else 3
    if input_channels == "auto":
        input_channels = 1 if all(a == 1 for a, _ in probed.values()) else 3
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    shards: list[ShardInfo] = []
    tar, first, written = None, 0, 0
    for k in keys:
        a_path, b_path = a_files[k], b_files[k]
        if probed[k][0] == 3 and input_channels == 1:
            errors.append(
                f"{a_path}: input has 3 colour channels but --input-channels is 1 (an edge map or "
                "gray input must be a 1-channel image); convert it to grayscale"
            )
            continue
        try:
            a_bytes, a_size = _encode(a_path, input_channels, resolution)
            b_bytes, b_size = _encode(b_path, channels, resolution)
        except (OSError, ValueError) as exc:
            errors.append(f"{a_path} / {b_path}: not a readable image ({exc})")
            continue
        if a_size != b_size:
            errors.append(
                f"{a_path}: input is {a_size[0]}x{a_size[1]} but its target {b_path} is "
                f"{b_size[0]}x{b_size[1]}; a pair must have one size"
            )
            continue
        if tar is not None and tar.count >= maxcount:
            shards.append(_commit(tar, first))
            tar = None
        if tar is None:
            tar, first = ShardTar(os.path.join(out_dir, SHARD_PATTERN.format(len(shards)))), written
        tar.add(
            "%08d" % written,
            {"a.png": a_bytes, "b.png": b_bytes, "json": json.dumps({"path": k}, separators=(",", ":")).encode()},
        )
        written += 1
    if tar is not None:
        shards.append(_commit(tar, first))
    if not shards:
        raise ShardError(
            f"no usable pairs between SRC '{inputs}' and --paired '{targets}' "
            f"({len(errors)} problem(s): {'; '.join(errors[:3])}); pair files by name"
        )
    args = {
        "resolution": resolution,
        "channels": channels,
        "input_channels": input_channels,
        "paired": True,
        "targets": os.fspath(targets),
        "maxcount": maxcount,
    }
    manifest = Manifest(
        num_samples=written,
        resolution=resolution,
        channels=channels,
        format="png",
        num_classes=0,
        class_names=None,
        labelled=False,
        urls=brace_pattern(len(shards)),
        shards=shards,
        args=args,
        source=os.fspath(inputs),
        encoder={"pillow": PIL.__version__},
    )
    write_manifest(out_dir, manifest)
    return PairedResult(manifest, errors)


def _commit(tar: ShardTar, first: int) -> ShardInfo:
    size, sha = tar.commit()
    return ShardInfo(os.path.basename(tar.final_path), first, tar.count, size, sha)
