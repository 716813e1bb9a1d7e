"""Atomic, verifiable training checkpoints holding the whole state of a run.

Layout of one checkpoint (`<run>/checkpoints/step-00001234/`):
  G/, D/               DeepSpeed checkpoints of the two engines (weights, optimizer, ZeRO parts)
  ema.safetensors      G_ema weights and buffers
  rank-<r>.safetensors per-rank state: RNG state, path-length mean
  state.json           progress counters (step, images seen) and what wrote them
  MANIFEST.json        every file above with its size and SHA-256, written last

All ranks write into `.step-<n>.partial/`; rank 0 then writes the manifest and renames the
folder into place. A crash at any point leaves the previous checkpoint as the newest complete
one; resume verifies the manifest and falls back to an older checkpoint, with a warning, when
the newest is damaged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from trainer import distributed

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
FORMAT_VERSION = 1
ENGINE_TAG = "state"


class CheckpointError(RuntimeError):
    pass


@dataclass
class Progress:
    """Counters that say where training is; saved in state.json."""

    step: int = 0  # optimizer steps of the main phases (one per batch)
    images_seen: int = 0  # real images shown to D, all ranks together
    world_size: int = 1
    extra: dict = field(default_factory=dict)  # family-specific scalars (e.g. augmentation p)

    @property
    def kimg(self) -> float:
        return self.images_seen / 1000.0


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def verify(folder: Path) -> Optional[str]:
    """None when the checkpoint's manifest matches its files, else what is wrong."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return "no manifest (the write did not finish)"
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as exc:
        return f"unreadable manifest: {exc}"
    for rel, meta in manifest.get("files", {}).items():
        path = folder / rel
        if not path.is_file():
            return f"missing file {rel}"
        if path.stat().st_size != meta["bytes"]:
            return f"{rel} has {path.stat().st_size} bytes, manifest says {meta['bytes']}"
        if _sha256(path) != meta["sha256"]:
            return f"{rel} does not match its SHA-256"
    return None


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete-looking checkpoints of a run, newest first (by step number)."""
    folder = checkpoints_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / MANIFEST).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]), reverse=True)


def find_resumable(path: Path) -> Optional[Path]:
    """The newest verified checkpoint under a run dir (or the given checkpoint itself, verified)."""
    path = Path(path)
    if (path / MANIFEST).exists() or path.name.startswith("step-"):
        problem = verify(path)
        if problem:
            raise CheckpointError(f"checkpoint '{path}' is damaged: {problem}")
        return path
    for candidate in list_checkpoints(path):
        problem = verify(candidate)
        if problem is None:
            return candidate
        log.warning("checkpoint %s is damaged (%s); falling back to an older one", candidate, problem)
    return None


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state()
    return state


def save(run_dir: Path, *, G_engine, D_engine, G_ema: torch.nn.Module, progress: Progress,
         rank_tensors: dict[str, torch.Tensor], rank: int, keep: int) -> Path:
    """Write a checkpoint collectively (every rank calls this); returns its final folder."""
    t0 = time.perf_counter()
    root = checkpoints_dir(run_dir)
    name = f"step-{progress.step:08d}"
    final, partial = root / name, root / f".{name}.partial"
    if rank == 0:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    distributed.barrier()
    G_engine.save_checkpoint(str(partial / "G"), tag=ENGINE_TAG)
    D_engine.save_checkpoint(str(partial / "D"), tag=ENGINE_TAG)
    save_file({**_rng_state(), **{k: v.detach().cpu().contiguous() for k, v in rank_tensors.items()}},
              str(partial / f"rank-{rank}.safetensors"))
    if rank == 0:
        save_file({k: v.detach().cpu().contiguous() for k, v in G_ema.state_dict().items()},
                  str(partial / "ema.safetensors"))
        _write_json_atomic(partial / "state.json", {"format_version": FORMAT_VERSION, **asdict(progress)})
    distributed.barrier()
    if rank == 0:
        files = {str(p.relative_to(partial)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                 for p in _files(partial)}
        _write_json_atomic(partial / MANIFEST, {"format_version": FORMAT_VERSION, "step": progress.step,
                                                "images_seen": progress.images_seen, "files": files})
        if final.exists():  # the same step written before (e.g. a re-run of the last interval)
            shutil.rmtree(final)
        os.replace(partial, final)
        _prune(root, keep)
        log.info("checkpoint %s written in %.1f s", final, time.perf_counter() - t0)
    distributed.barrier()
    return final


def _prune(root: Path, keep: int) -> None:
    complete = list_checkpoints(root.parent)
    for old in complete[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def load(folder: Path, *, G_engine, D_engine, G_ema: torch.nn.Module, rank: int, world_size: int
         ) -> tuple[Progress, dict[str, torch.Tensor]]:
    """Restore the state written by `save`; returns the progress and this rank's tensors."""
    folder = Path(folder)
    state = json.loads((folder / "state.json").read_text())
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{folder}/state.json has format {state.get('format_version')}, expected {FORMAT_VERSION}")
    state.pop("format_version")
    progress = Progress(**state)
    if progress.world_size != world_size:
        raise CheckpointError(
            f"checkpoint {folder} was written by {progress.world_size} ranks but this run has {world_size}; "
            f"set launch.nproc_per_node (or the node count) to {progress.world_size}")
    for engine, sub in ((G_engine, "G"), (D_engine, "D")):
        loaded, _ = engine.load_checkpoint(str(folder / sub), tag=ENGINE_TAG, load_optimizer_states=True,
                                           load_lr_scheduler_states=False)
        if loaded is None:
            raise CheckpointError(f"DeepSpeed could not load {folder / sub}")
    G_ema.load_state_dict(load_file(str(folder / "ema.safetensors")))
    tensors = load_file(str(folder / f"rank-{rank}.safetensors"))
    torch.set_rng_state(tensors.pop("torch_cpu"))
    cuda_state = tensors.pop("torch_cuda", None)
    if cuda_state is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda_state)
    progress.world_size = world_size
    return progress, tensors
