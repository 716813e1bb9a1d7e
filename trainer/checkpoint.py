"""Atomic, verifiable training checkpoints holding the whole state of a run.

Layout of one checkpoint (`<run>/checkpoints/step-00001234/`):
  G/, D/               DeepSpeed checkpoints of the two engines (weights, optimizer, ZeRO parts)
  ema.safetensors      G_ema weights and buffers
  optim-G/D.safetensors each engine's Adam state consolidated (fp32 masters, moments, step per
                       parameter): what a resume with another world size reshards from
  rank-<r>.safetensors per-rank state: RNG state, path-length mean
  state.json           progress counters (step, images seen) and what wrote them
  MANIFEST.json        every file above with its size and SHA-256, written last

All ranks write into `.step-<n>.partial/`; rank 0 then writes the manifest and renames the
folder into place. A crash at any point leaves the previous checkpoint as the newest complete
one; resume verifies the manifest and falls back to an older checkpoint, with a warning, when
the newest is damaged.

Resume with the same world size loads DeepSpeed's own files and is bit-exact. With another world
size (e.g. 2 ranks -> 1) DeepSpeed's per-rank ZeRO partitions do not fit, so the engines load
only the module weights and buffers from DeepSpeed's files and the Adam state from
`optim-*.safetensors`, which each new rank slices for its own partition (exact). Per-rank state
cannot be exact: new rank r takes old rank r % old_world_size's tensors (path-length mean,
augmentation state, image pools) and reseeds its RNG from (run.seed, step, r). The data stream
restarts at the same global image count in the new slot layout (see trainer/data.py).
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

import numpy as np
import torch
from safetensors.torch import load_file

from trainer import distributed
from trainer.files import save_safetensors  # the umask's permissions, not safetensors' 0600

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
FORMAT_VERSION = 1
ENGINE_TAG = "state"
# Tests set this to a folder: right after a resume, rank 0 writes there what it loaded
# (G/D module weights and re-gathered Adam state, G_ema), to compare with what was saved.
DEBUG_DUMP_ENV = "HIRESGAN_DEBUG_RESUME_DUMP"


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


def save(
    run_dir: Path,
    *,
    G_engine,
    D_engine,
    G_ema: torch.nn.Module,
    progress: Progress,
    rank_tensors: dict[str, torch.Tensor],
    rank: int,
    keep: int,
) -> Path:
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
    # Collective at ZeRO 1/2 and bf16 (every rank takes part); only rank 0 writes it.
    # Skipped for an engine it cannot read: that checkpoint then resumes only at its own world size.
    optim = {
        sub: distributed.full_optimizer_state(engine)
        for sub, engine in (("G", G_engine), ("D", D_engine))
        if distributed.has_full_optimizer_state(engine)
    }
    if rank == 0:
        for sub, tensors in optim.items():
            save_safetensors(tensors, str(partial / f"optim-{sub}.safetensors"))
    save_safetensors(
        {**_rng_state(), **{k: v.detach().cpu().contiguous() for k, v in rank_tensors.items()}},
        str(partial / f"rank-{rank}.safetensors"),
    )
    if rank == 0:
        save_safetensors(
            {k: v.detach().cpu().contiguous() for k, v in G_ema.state_dict().items()}, str(partial / "ema.safetensors")
        )
        _write_json_atomic(partial / "state.json", {"format_version": FORMAT_VERSION, **asdict(progress)})
    distributed.barrier()
    if rank == 0:
        files = {
            str(p.relative_to(partial)): {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in _files(partial)
        }
        _write_json_atomic(
            partial / MANIFEST,
            {
                "format_version": FORMAT_VERSION,
                "step": progress.step,
                "images_seen": progress.images_seen,
                "files": files,
            },
        )
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


def load(
    folder: Path, *, G_engine, D_engine, G_ema: torch.nn.Module, rank: int, world_size: int, seed: int = 0
) -> tuple[Progress, dict[str, torch.Tensor]]:
    """Restore the state written by `save`; returns the progress and this rank's tensors."""
    folder = Path(folder)
    state = json.loads((folder / "state.json").read_text())
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{folder}/state.json has format {state.get('format_version')}, expected {FORMAT_VERSION}"
        )
    state.pop("format_version")
    progress = Progress(**state)
    old_world = progress.world_size
    resharded = old_world != world_size
    if resharded:
        missing = [
            f"optim-{sub}.safetensors" for sub in ("G", "D") if not (folder / f"optim-{sub}.safetensors").is_file()
        ]
        if missing:  # written before consolidated optimizer state existed
            raise CheckpointError(
                f"checkpoint {folder} was written by {old_world} ranks but this run has {world_size}, and it has no "
                f"{' / '.join(missing)} to reshard the optimizer from (older checkpoints, and train.zero_stage=0 with "
                f"train.precision=bf16, have none); set launch.nproc_per_node (or the node count) to {old_world}"
            )
    for engine, sub in ((G_engine, "G"), (D_engine, "D")):
        # Another world size: DeepSpeed's ZeRO files are cut for the old one, so load only the
        # module (weights and buffers) from them and the Adam state from our consolidated file.
        loaded, _ = engine.load_checkpoint(
            str(folder / sub), tag=ENGINE_TAG, load_optimizer_states=not resharded, load_lr_scheduler_states=False
        )
        if loaded is None:
            raise CheckpointError(f"DeepSpeed could not load {folder / sub}")
        if resharded:
            distributed.load_full_optimizer_state(engine, load_file(str(folder / f"optim-{sub}.safetensors")))
    G_ema.load_state_dict(load_file(str(folder / "ema.safetensors")))
    # Per-rank state of the rank that had this number, or the rank it wraps onto when the world grew.
    tensors = load_file(str(folder / f"rank-{rank % old_world}.safetensors"))
    rng = {k: tensors.pop(k) for k in ("torch_cpu", "torch_cuda") if k in tensors}
    if resharded:
        # Copying an old rank's RNG would give two new ranks one stream when the world grows;
        # a seed from (seed, step, rank) is distinct per rank and the same on every re-run.
        torch.manual_seed(int(np.random.SeedSequence([seed, progress.step, rank, 0x52534844]).generate_state(1)[0]))
    else:
        torch.set_rng_state(rng["torch_cpu"])
        if "torch_cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["torch_cuda"])
    if resharded and rank == 0:
        log.warning(
            "world size changed from %d to %d ranks: G, D, G_ema and the Adam state (resharded) are restored "
            "exactly; approximate: per-rank state (new rank r takes old rank r %% %d's path-length mean and "
            "augmentation state), RNG streams (reseeded from seed, step and rank) and the data order (the stream "
            "resumes at %d images = epoch position of the new %d-rank layout, not the old sample order)",
            old_world,
            world_size,
            old_world,
            progress.images_seen,
            world_size,
        )
    progress.world_size = world_size
    if os.environ.get(DEBUG_DUMP_ENV):
        _debug_dump(Path(os.environ[DEBUG_DUMP_ENV]), G_engine=G_engine, D_engine=D_engine, G_ema=G_ema, rank=rank)
    return progress, tensors


def _debug_dump(out: Path, *, G_engine, D_engine, G_ema: torch.nn.Module, rank: int) -> None:
    """What the engines hold right after loading, for tests (collective, like `save`)."""
    dumps = {}
    for sub, engine in (("G", G_engine), ("D", D_engine)):
        module = {f"module/{k}": v.detach().float().cpu().contiguous() for k, v in engine.module.state_dict().items()}
        dumps[sub] = {**module, **distributed.full_optimizer_state(engine)}
        # This rank's flat partitions as the optimizer itself holds them: a check of the
        # per-parameter view that does not go through DeepSpeed's fragment mapping.
        inner = getattr(engine.optimizer, "optimizer", None)
        if inner is not None and distributed.is_partitioned(engine):
            for i, group in enumerate(inner.param_groups):
                for key, value in (inner.state.get(group["params"][0]) or {}).items():
                    if key in ("exp_avg", "exp_avg_sq"):
                        dumps[sub][f"flat{i}/{key}"] = value.detach().cpu().clone()
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        for sub, tensors in dumps.items():
            engine = G_engine if sub == "G" else D_engine
            order = [n for n, p in engine.module.named_parameters() if p.requires_grad]
            save_safetensors(tensors, str(out / f"{sub}.safetensors"), metadata={"order": json.dumps(order)})
        save_safetensors(
            {k: v.detach().cpu().contiguous() for k, v in G_ema.state_dict().items()}, str(out / "ema.safetensors")
        )
