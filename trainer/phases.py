"""The public phase API: everything a model family's recipe may use of the training loop.

A *recipe* (one file in `trainer/recipes/`) says what one training step of its family is: which
phases run (G main, G reg, D main, D reg, ...) and what each phase's loss is. The loop
(`trainer.loop.Trainer`) owns what every family shares: engines, data, EMA, logging,
checkpoints, grids and exports. The two meet only here:

* `Recipe` is the protocol a recipe implements, with every optional hook declared (and given a
  default by `RecipeBase`), so the loop never asks `hasattr`.
* `StepContext` is what the loop hands to `Recipe.train_phases` once per step: the batch on the
  training device, the networks and engines (read-only properties), the counters, and the three
  services a phase needs: `run_phase`, `z` and `random_labels`.

Recipes import this module and never the loop, so there is no import circle; the loop imports
recipes only through `trainer.recipes.build_recipe`.

Writing a new family: docs/ARCHITECTURE.md, "Write a new family".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional, Protocol

import torch

from trainer.losses import PhaseLosses

Network = Literal["G", "D"]
NETWORKS: tuple[Network, ...] = ("G", "D")


@dataclass(frozen=True)
class Counters:
    """Where training stands when a step starts (before the step's own images are counted)."""

    step: int  # optimizer steps already taken
    images_seen: int  # real images seen so far, all ranks together

    @property
    def kimg(self) -> float:
        return self.images_seen / 1000


@dataclass(frozen=True)
class StepBatch:
    """One rank's real batch on the training device.

    `real` is the main image tensor in [-1, 1] ([B, C, H, W]); `real_c` the one-hot labels
    ([B, c_dim]) or None for unconditional models; `extras` holds the family's other per-sample
    tensors as the data stream decoded them (e.g. a super-resolution LR image, an inpainting mask,
    caption token ids), already on the device and otherwise untouched.
    """

    real: torch.Tensor
    real_c: Optional[torch.Tensor]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    keys: tuple[str, ...] = ()  # "shard-url#key" per sample, for tracing


class StepContext:
    """One step of one rank, as a recipe sees it. Built by the loop; recipes never construct it.

    The networks are the engines' modules (`G`, `D`) and the EMA copy (`G_ema`); read them, call
    them, set their stage (ProGAN), but leave optimizers and gradients to `run_phase`.
    """

    def __init__(
        self,
        *,
        nets: dict[str, torch.nn.Module],
        engines: dict[str, Any],
        batch: StepBatch,
        counters: Counters,
        batch_size: int,
        device: torch.device,
        dtype: torch.dtype,
        rank: int,
        world_size: int,
        z_dim: int,
        c_dim: int,
        run_phase: Callable[[str, Network, Callable[[], PhaseLosses]], None],
        next_batch: Callable[[str], StepBatch],
    ):
        self._nets, self._engines = nets, engines
        self._run_phase, self._next_batch = run_phase, next_batch
        self.batch, self.counters = batch, counters
        self.batch_size = batch_size  # per rank
        self.device, self.dtype = device, dtype
        self.rank, self.world_size = rank, world_size
        self.z_dim, self.c_dim = z_dim, c_dim

    # --------------------------------------------------------------- read-only views
    @property
    def G(self) -> torch.nn.Module:
        return self._nets["G"]

    @property
    def D(self) -> torch.nn.Module:
        return self._nets["D"]

    @property
    def G_ema(self) -> torch.nn.Module:
        return self._nets["G_ema"]

    @property
    def G_engine(self):
        return self._engines["G"]

    @property
    def D_engine(self):
        return self._engines["D"]

    @property
    def step(self) -> int:
        return self.counters.step

    @property
    def images_seen(self) -> int:
        return self.counters.images_seen

    # --------------------------------------------------------------- services
    def run_phase(self, name: str, network: Network, compute: Callable[[], PhaseLosses]) -> None:
        """Run one phase: only `network` takes gradients, `compute()` builds the loss, its
        engine does backward and step, and the loss terms are logged as `{network}/{term}`.
        Phase names ending in `_main` are the ones whose gradient norms are reported."""
        if network not in NETWORKS:
            raise ValueError(f"run_phase({name!r}, network={network!r}): network must be one of {NETWORKS}")
        self._run_phase(name, network, compute)

    def z(self, n: int) -> torch.Tensor:
        """n latents [n, z_dim] from this rank's generator, on the device, in the training dtype."""
        return torch.randn([n, self.z_dim], device=self.device, dtype=self.dtype)

    def random_labels(self, n: int) -> Optional[torch.Tensor]:
        """n uniformly drawn one-hot labels [n, c_dim], or None for unconditional models."""
        if self.c_dim == 0:
            return None
        return one_hot(torch.randint(self.c_dim, [n]), self.c_dim, self.device, self.dtype)

    def next_batch(self, stream: str) -> StepBatch:
        """The next batch of one of the recipe's extra streams (`Recipe.extra_streams`), read in
        step with the main stream, so a resume continues it exactly."""
        return self._next_batch(stream)


def one_hot(labels: torch.Tensor, c_dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels.to(device), c_dim).to(dtype)


@dataclass(frozen=True)
class ExtraStream:
    """A second data stream a recipe reads beside the main one (CycleGAN's domain B).

    `urls` is a `data.urls`-style spec (folders, manifests, brace patterns, URLs, `s3://`);
    `config_key` names the key it came from, for error messages. `seed_offset` keeps its order
    independent of the main stream's."""

    urls: str
    config_key: str
    seed_offset: int
    labeled: bool = False


class Recipe(Protocol):
    """What the loop calls on a family's recipe. `RecipeBase` gives every optional hook a default."""

    g_reg_interval: int  # lazy G regularization every N steps (0: none); Adam is rescaled for it
    d_reg_interval: int  # lazy D regularization every N steps (0: none)

    def train_phases(self, ctx: StepContext) -> None:
        """Run this step's phases (each through `ctx.run_phase`) on `ctx.batch`."""

    # ----------------------------------------------------------- optional hooks
    def rank_tensors(self) -> dict[str, torch.Tensor]:
        """Per-rank tensors a checkpoint must keep for an exact resume."""

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what `rank_tensors` returned."""

    def extra_streams(self) -> dict[str, ExtraStream]:
        """Named extra streams the loop must build (read with `ctx.next_batch(name)`)."""

    def sample_decoder(self):
        """The `trainer.data.stream.SampleDecoder` that turns a raw shard sample into this family's
        arrays (crops, masks, degraded copies, captions); None: the default image + label one."""

    def grid_images(self, G_ema: torch.nn.Module) -> Optional[tuple[torch.Tensor, int]]:
        """(images, rows) for the sample grid, or None to sample G_ema from fixed latents."""

    def export_metadata(self) -> dict[str, Any]:
        """JSON-able facts the export must carry for samplers (e.g. a tokenizer, a scale)."""

    def validate(self, G_ema: torch.nn.Module) -> Optional[dict[str, float]]:
        """Scores of G_ema on the family's held-out data, called on rank 0 with every sample grid
        (e.g. super-resolution PSNR/SSIM on validation photos); the loop writes them to the JSONL
        and the `hiresgan_validation_score{metric}` gauge. None: nothing to score."""


class RecipeBase:
    """Defaults for `Recipe`'s optional hooks; recipes subclass it and override what they need."""

    g_reg_interval = 0
    d_reg_interval = 0

    def train_phases(self, ctx: StepContext) -> None:  # pragma: no cover - every recipe overrides
        raise NotImplementedError

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass

    def extra_streams(self) -> dict[str, ExtraStream]:
        return {}

    def sample_decoder(self):
        return None

    def grid_images(self, G_ema: torch.nn.Module) -> Optional[tuple[torch.Tensor, int]]:
        return None

    def export_metadata(self) -> dict[str, Any]:
        return {}

    def validate(self, G_ema: torch.nn.Module) -> Optional[dict[str, float]]:
        return None
