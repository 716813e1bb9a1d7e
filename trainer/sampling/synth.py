"""`hiresgan synth`: a labelled shard set drawn from a conditional export (docs/SYNTH.md).

N images per class, written in the shard writer's format (trainer/shards: `shard-NNNNNN.tar` +
`manifest.json`, members `KEY.png`, `KEY.cls`, `KEY.json`, and `KEY.txt` with the prompt for text
exports), so training configs, `hiresgan eval --data` and stock webdataset read it like any set.

Sample i of the set has class slot i % K (K classes: every shard holds every class) and is the
(i // K)-th image of that class; its latent comes from the seed (set seed, export class index,
n) only, so `--classes 3` draws the same latents for class 3 as a run over all classes.

Nothing half-written ever looks whole: shards are written into `OUT.partial/` (each under a temp
name, renamed when complete, with a completion record as `hiresgan shards` keeps them), the
manifest is written last, and the folder is renamed to OUT only then. A rerun with the same
arguments resumes an interrupted `OUT.partial/` (finished shards are verified and kept); other
arguments restart it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import PIL
import torch
from PIL import Image
from tqdm import tqdm

from trainer.export import load_generator, resolve_export
from trainer.images import to_uint8
from trainer.shards.manifest import MANIFEST_NAME, SHARD_PATTERN, Manifest, ShardInfo, brace_pattern, write_manifest
from trainer.shards.progress import PROGRESS_DIR, finished_shard, write_record
from trainer.shards.tarshard import ShardTar, file_sha256

DEFAULT_MAXCOUNT = 1000  # samples per shard: several shards per set, so ranks and workers each get some
TEXT_FAMILIES = ("text2img",)  # exports whose classes are prompts (--classes gives them)
# What OUT may hold for --overwrite to replace it: a shard set, finished or not, and nothing else.
SHARD_SET_FILES = (MANIFEST_NAME, PROGRESS_DIR)


class SynthError(ValueError):
    """Bad arguments for `hiresgan synth`; the message names the flag or file and how to fix it."""


@dataclass(frozen=True)
class Conditioning:
    """The classes a set is drawn for and how to turn one into G's condition input."""

    indices: tuple[int, ...]  # label written to `cls` for each chosen class (the export's class index)
    names: tuple[str, ...]  # its name (class name, or the prompt of a text export)
    num_classes: int  # labels lie in [0, num_classes): the export's c_dim, or the number of prompts
    class_names: Optional[list[str]]  # for the manifest: every class of the export, when known
    condition: Callable[[list[int]], Optional[torch.Tensor]]  # labels [n] -> G's c input
    captions: bool  # write each sample's class name as a `.txt` caption (text exports)


def class_conditioning(
    G: torch.nn.Module, description: dict, classes: Optional[Sequence[str]], export: Path
) -> Conditioning:
    """One-hot classes of a class-conditional export; `classes` are names or indices (None: all)."""
    c_dim = int(G.c_dim)
    if c_dim == 0:
        raise SynthError(
            f"'{export}' is unconditional (family {description.get('family')}, no classes): synth "
            "writes labelled sets and CAS needs classes; use a class-conditional export "
            "(model.conditional=true with data.num_classes > 0) or a text export with --classes PROMPTS"
        )
    names = description.get("class_names") or [str(k) for k in range(c_dim)]
    if classes is None:
        chosen = list(range(c_dim))
    else:
        chosen = []
        for item in classes:
            item = str(item).strip()
            if item in names:
                k = names.index(item)
            elif item.isdigit() and int(item) < c_dim:
                k = int(item)
            else:
                raise SynthError(
                    f"--classes {item!r}: '{export}' has no such class; its classes are "
                    f"{', '.join(names)} (names, or indices 0..{c_dim - 1})"
                )
            if k in chosen:
                raise SynthError(f"--classes names class {names[k]!r} twice; give each class once")
            chosen.append(k)

    def condition(labels: list[int]) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.tensor(labels), c_dim).float()

    return Conditioning(tuple(chosen), tuple(names[k] for k in chosen), c_dim, list(names), condition, False)


def text_conditioning(description: dict, prompts: Optional[Sequence[str]], export: Path) -> Conditioning:
    """A text export: each prompt given with --classes is one class (label = its position)."""
    if not prompts:
        raise SynthError(
            f"'{export}' is a text-to-image export: give the prompts that serve as classes, e.g. "
            "--classes 'a red three' 'a blue seven'"
        )
    if len(set(prompts)) != len(prompts):
        raise SynthError("--classes names a prompt twice; give each prompt once")
    # Only text exports need the text package. The tokenizer comes from the generator's own
    # arguments, as `hiresgan sample` reads it: a checkpoint's export has no top-level copy.
    from trainer.sampling.prompts import export_tokenizer

    tokenizer = export_tokenizer(description)
    tokens = [tokenizer.encode(p, warn=True, source=f"--classes {p!r}") for p in prompts]

    def condition(labels: list[int]) -> torch.Tensor:
        return torch.tensor([tokens[k] for k in labels], dtype=torch.int64)

    return Conditioning(tuple(range(len(prompts))), tuple(prompts), len(prompts), list(prompts), condition, True)


def sample_seed(seed: int, class_index: int, n: int) -> int:
    """The latent seed of the n-th image of a class: independent of which other classes are drawn."""
    return int(np.random.SeedSequence([seed, class_index, n]).generate_state(1, np.uint64)[0] >> 1)


def latents(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    return torch.cat([torch.randn([1, z_dim], generator=torch.Generator().manual_seed(s)) for s in seeds])


def png_bytes(pixels: np.ndarray) -> bytes:
    """uint8 [H, W, C] -> PNG bytes (zlib level 6, as the shard writer)."""
    image = Image.fromarray(pixels[:, :, 0], "L") if pixels.shape[2] == 1 else Image.fromarray(pixels, "RGB")
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=6)
    return out.getvalue()


def check_out(out: Path, *, overwrite: bool) -> None:
    """OUT must be absent or empty, or (with --overwrite) hold only a shard set."""
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out '{out}' exists and is not a folder; pass a folder path")
    if not out.is_dir():
        return
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    shards = [e for e in entries if e.startswith("shard-") and e.endswith(".tar")]
    other = [e for e in entries if e not in shards and e not in SHARD_SET_FILES]
    if other:
        raise SynthError(
            f"--out '{out}' holds files that are not a shard set ({', '.join(other[:5])}); pick an empty or new folder"
        )
    if not overwrite:
        raise SynthError(
            f"--out '{out}' already holds a shard set ({len(shards)} shard(s)"
            f"{', manifest.json' if MANIFEST_NAME in entries else ''}); pass --overwrite to replace "
            "it, or pick another folder"
        )


def synthesize(
    export: Path,
    out: Path,
    *,
    per_class: int,
    truncation: float = 1.0,
    classes: Optional[Sequence[str]] = None,
    seed: int = 0,
    maxcount: int = DEFAULT_MAXCOUNT,
    overwrite: bool = False,
    progress: bool = False,
    device: str = "cpu",
    batch: int = 64,
) -> Manifest:
    """Write per_class images of each class of `export` to OUT as a labelled shard set; see the
    module docstring. Every argument is checked before anything is written."""
    export, out = Path(export), Path(out)
    if not isinstance(per_class, int) or per_class < 1:
        raise SynthError(f"--per-class {per_class}: must be >= 1 (images written per class)")
    if maxcount < 1:
        raise SynthError(f"--maxcount {maxcount}: must be >= 1")
    if not truncation > 0:
        raise SynthError(f"--truncation {truncation}: must be > 0 (1: none; 0.7 trades variety for fidelity)")
    check_out(out, overwrite=overwrite)
    weights, _ = resolve_export(export)
    G, description = load_generator(export, device)
    if description.get("family") in TEXT_FAMILIES:
        cond = text_conditioning(description, classes, export)
    else:
        cond = class_conditioning(G, description, classes, export)
    args = {
        "per_class": per_class,
        "truncation": truncation,
        "classes": list(cond.names),
        "seed": seed,
        "maxcount": maxcount,
        "format": "png",
        "export_sha256": file_sha256(str(weights)),
    }
    fingerprint = hashlib.sha256(
        json.dumps({"args": args, "pillow": PIL.__version__, "torch": torch.__version__}, sort_keys=True).encode()
    ).hexdigest()
    partial = out.with_name(out.name + ".partial")
    _prepare_partial(partial, fingerprint)
    plan = [(cond.indices[i % len(cond.indices)], i // len(cond.indices)) for i in range(per_class * len(cond.indices))]
    shards: list[ShardInfo] = []
    with tqdm(total=len(plan), unit="img", desc="synth", disable=not progress, dynamic_ncols=True) as bar:
        for first in range(0, len(plan), maxcount):
            name = SHARD_PATTERN.format(len(shards))
            info = finished_shard(str(partial), name, first, fingerprint)
            if info is None:
                info = _write_shard(
                    partial / name,
                    first,
                    plan[first : first + maxcount],
                    G,
                    cond,
                    truncation=truncation,
                    seed=seed,
                    device=device,
                    batch=batch,
                    bar=bar,
                )
                write_record(str(partial), info, fingerprint)
            else:
                bar.update(info.count)
            shards.append(info)
    manifest = Manifest(
        num_samples=len(plan),
        resolution=int(G.img_resolution),
        channels=int(G.img_channels),
        format="png",
        num_classes=cond.num_classes,
        class_names=cond.class_names,
        labelled=True,
        urls=brace_pattern(len(shards)),
        shards=shards,
        args=args,
        source=str(export),
        encoder={
            "pillow": PIL.__version__,
            "torch": torch.__version__,
            "generator": "hiresgan synth",
            "family": description.get("family"),
        },
    )
    write_manifest(str(partial), manifest)
    if out.exists():  # --overwrite, checked above: the old set goes only once the new one is whole
        shutil.rmtree(out)
    os.replace(partial, out)
    return manifest


def _prepare_partial(partial: Path, fingerprint: str) -> None:
    """Keep an interrupted run's folder when its arguments match (resume), else start it afresh."""
    marker = partial / PROGRESS_DIR / "synth.json"
    if partial.is_dir():
        try:
            same = json.loads(marker.read_text()).get("fingerprint") == fingerprint
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(partial)
    (partial / PROGRESS_DIR).mkdir(parents=True, exist_ok=True)
    for leftover in partial.glob(".shard-*.tar.partial"):
        leftover.unlink()
    if not marker.is_file():
        marker.write_text(json.dumps({"fingerprint": fingerprint}))


@torch.no_grad()
def _write_shard(
    path: Path,
    first: int,
    plan: list[tuple[int, int]],
    G: torch.nn.Module,
    cond: Conditioning,
    *,
    truncation: float,
    seed: int,
    device: str,
    batch: int,
    bar,
) -> ShardInfo:
    tar = ShardTar(str(path))
    try:
        for start in range(0, len(plan), batch):
            chunk = plan[start : start + batch]
            seeds = [sample_seed(seed, k, n) for k, n in chunk]
            labels = [k for k, _ in chunk]
            c = cond.condition(labels)
            images = G(
                latents(seeds, G.z_dim).to(device),
                None if c is None else c.to(device),
                truncation_psi=truncation,
                noise_mode="const",
            )
            for j, ((k, n), s, pixels) in enumerate(zip(chunk, seeds, to_uint8(images))):
                name = cond.names[cond.indices.index(k)]
                fields = {
                    "png": png_bytes(pixels),
                    "cls": str(k).encode("ascii"),
                    "json": json.dumps(
                        {"class": k, "name": name, "n": n, "seed": s, "truncation": truncation},
                        sort_keys=True,
                        separators=(",", ":"),
                    ).encode("utf-8"),
                }
                if cond.captions:
                    fields["txt"] = name.encode("utf-8")
                tar.add("%08d" % (first + start + j), fields)
            bar.update(len(chunk))
        size, sha = tar.commit()
    except BaseException:
        tar.abort()
        raise
    return ShardInfo(path.name, first, len(plan), size, sha)
