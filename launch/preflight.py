"""Checks and preparation that run once, before any training process starts, so bad input fails
fast with one clear line and nothing in the run directory is overwritten."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

from trainer import checkpoint
from trainer.config import Config, ConfigError
from trainer.data.colour_digits import ensure_colour_digit_shards
from trainer.data.digits import ensure_digit_shards
from trainer.data.edges2digits import ensure_edges2digits_shards
from trainer.data.photos import ensure_photo_shards, photos_root
from trainer.data.sources import DataError, expand_urls, find_manifest, resolve_urls
from trainer.data.unpaired_digits import ensure_unpaired_edges2digits


def prepare_data(cfg: Config, *, is_main: bool = True, wait_seconds: float = 300) -> None:
    """Write the embedded dataset when asked, then check that every local shard exists."""
    urls = expand_urls(cfg.data.urls)
    if not urls:
        raise ConfigError(f"config key 'data.urls': '{cfg.data.urls}' names no shard")
    if cfg.data.prepare == "photos":
        root = photos_root(urls[0])
        if is_main:
            ensure_photo_shards(root)
        else:  # another rank of an external launch writes them
            deadline = time.monotonic() + wait_seconds
            while not (root / "photos.json").is_file() and time.monotonic() < deadline:
                time.sleep(0.5)
    if cfg.data.prepare == "edges2digits_unpaired":  # CycleGAN's default: domain A in urls, B in urls_b
        folder_a, folder_b = (_shard_folder(expand_urls(spec)[0]) for spec in (cfg.data.urls, cfg.data.urls_b))
        if is_main:
            ensure_unpaired_edges2digits(folder_a, folder_b)
        else:
            deadline = time.monotonic() + wait_seconds
            while not (folder_b / "manifest.json").is_file() and time.monotonic() < deadline:
                time.sleep(0.5)
    if cfg.data.prepare in ("digits", "edges2digits", "text2img_digits"):
        # data.urls may name the shards (or the manifest) or the folder they go in.
        folder = Path(urls[0]).parent if urls[0].endswith((".tar", ".json")) else Path(urls[0])
        if is_main:
            ensure = {
                "digits": ensure_digit_shards,
                "edges2digits": ensure_edges2digits_shards,
                "text2img_digits": ensure_colour_digit_shards,
            }[cfg.data.prepare]
            ensure(folder)
        else:  # another rank of an external launch writes them; wait for its manifest
            deadline = time.monotonic() + wait_seconds
            while not (folder / "manifest.json").is_file() and time.monotonic() < deadline:
                time.sleep(0.5)
    try:  # local files, folders and manifests are checked here; remote shards when they are read
        resolve_urls(cfg.data.urls, timeout=cfg.data.timeout)
    except DataError as exc:
        raise ConfigError(f"config key 'data.urls': {exc}") from None
    check_mix(cfg)
    check_against_manifest(cfg)
    check_text(cfg)


def _shard_folder(url: str) -> Path:
    """data.urls may name the shards (or the manifest) or the folder they go in."""
    return Path(url).parent if url.endswith((".tar", ".json")) else Path(url)


def check_mix(cfg: Config) -> None:
    """data.mix (docs/SYNTH.md): its shards exist, and carry labels when the run trains on labels."""
    mix = cfg.data.mix
    if mix.fraction <= 0:
        return
    try:
        resolve_urls(mix.urls, timeout=cfg.data.timeout)
    except DataError as exc:
        raise ConfigError(f"config key 'data.mix.urls': {exc}") from None
    manifest = find_manifest(mix.urls)
    if cfg.data.num_classes > 0 and manifest and not manifest.get("labelled", bool(manifest.get("num_classes"))):
        raise ConfigError(
            f"config key 'data.mix.urls': data.num_classes is {cfg.data.num_classes} but these shards "
            "carry no labels (their manifest.json says so); mix in a labelled set (`hiresgan synth` "
            "writes one) or set data.num_classes=0"
        )


def check_against_manifest(cfg: Config) -> None:
    """Labels and channels the config expects vs. what a local manifest says the shards hold."""
    manifest = find_manifest(cfg.data.urls)
    if not manifest:
        return
    labelled = manifest.get("labelled", bool(manifest.get("num_classes")))
    classes = manifest.get("num_classes")
    if cfg.data.num_classes > 0 and not labelled:
        raise ConfigError(
            f"config key 'data.num_classes': is {cfg.data.num_classes} but the shards carry no labels "
            "(their manifest.json says so); set data.num_classes=0 or write the shards with --labels"
        )
    if cfg.data.num_classes > 0 and isinstance(classes, int) and classes > cfg.data.num_classes:
        raise ConfigError(
            f"config key 'data.num_classes': is {cfg.data.num_classes} but the shards hold {classes} "
            f"classes; set data.num_classes={classes}"
        )
    captioned = bool(manifest.get("captioned"))
    if captioned and cfg.model.family != "text2img":
        raise ConfigError(
            f"config key 'model.family': is {cfg.model.family}, which takes no text, but the shards of "
            "data.urls carry captions (their manifest.json says captioned); use model.family=text2img "
            "or write the shards with --captions none"
        )
    if cfg.model.family == "text2img" and not captioned:
        raise ConfigError(
            "config key 'data.urls': model.family=text2img needs captioned shards but their "
            "manifest.json says they carry no captions; write them with `hiresgan shards --captions "
            "auto|FILE.csv|FILE.jsonl`"
        )


def check_text(cfg: Config) -> None:
    """model.family=text2img: the tokenizer (builtin) or the encoder folder (hf:) exists, before any rank starts."""
    if cfg.model.family != "text2img":
        return
    from trainer.text.encoders import hf_path
    from trainer.text.vocabulary import tokenizer_for

    try:
        tokenizer_for(cfg) if cfg.text.encoder == "builtin" else hf_path(cfg.text.encoder)
    except ValueError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith("config key") else f"config key {message}") from None


def check_resume(cfg: Config) -> Optional[Path]:
    """Validate an explicit resume source now (auto-resume is decided by rank 0 at start-up)."""
    if cfg.run.resume in ("auto", "none"):
        if cfg.run.resume == "none" and checkpoint.list_checkpoints(cfg.run_dir):
            raise ConfigError(
                f"run directory '{cfg.run_dir}' already has checkpoints and run.resume=none; "
                "continue it with run.resume=auto or choose a new run.name (nothing was changed)"
            )
        return None
    source = Path(cfg.run.resume)
    if not source.exists():
        raise ConfigError(
            f"--resume '{source}' does not exist; pass a run directory or one of its checkpoints/step-* folders"
        )
    try:
        found = checkpoint.find_resumable(source)
    except checkpoint.CheckpointError as exc:
        raise ConfigError(f"--resume: {exc}") from None
    if found is None:
        raise ConfigError(f"--resume '{source}' holds no complete checkpoint to resume from")
    return found


def launched_externally() -> bool:
    """True inside torchrun / an elastic agent / an srun step that already made the ranks."""
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def wait_for_config(run_dir: Path, wait_seconds: float = 300) -> None:
    """Ranks other than 0 of an external launch wait until rank 0 wrote the resolved config."""
    deadline = time.monotonic() + wait_seconds
    while not (Path(run_dir) / "config.json").is_file():
        if time.monotonic() > deadline:
            raise ConfigError(f"rank 0 did not write {run_dir}/config.json within {wait_seconds:.0f} s")
        time.sleep(0.5)
