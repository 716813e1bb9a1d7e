"""TensorBoard events beside Prometheus and JSONL (`metrics.tensorboard=true`, rank 0 only).

Researchers read runs in TensorBoard (StyleGAN2-ADA, StudioGAN and mmgeneration write it). Rather
than keep a second list of what to log, every log step writes each sample of this rank's
Prometheus registry as a scalar, so the TensorBoard view always has every series of the catalog
(`trainer.telemetry.catalog.CATALOG`) that has a value. Tags are `name` plus the non-identity
labels (`hiresgan_loss/network=G,term=adversarial`); the step is images seen, the x axis
StyleGAN2-ADA uses (in images rather than kimg, so tiny runs still advance). Sample grids are
written as images at every tick.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
from prometheus_client import CollectorRegistry

from trainer.telemetry.catalog import IDENTITY_LABELS

EVENTS_DIR = "tensorboard"  # under the run directory


def scalar_tag(name: str, labels: dict[str, str]) -> str:
    """A stable tag for one Prometheus sample: identity labels dropped (one writer per run)."""
    extra = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in IDENTITY_LABELS and k != "le")
    return f"{name}/{extra}" if extra else name


class TensorBoardLog:
    """Writes the registry's samples and sample grids as TensorBoard events; a no-op when disabled."""

    def __init__(self, run_dir: Optional[Path]):
        self._writer = None
        if run_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # tensorboard is an optional extra
            raise ImportError(
                "metrics.tensorboard=true needs the tensorboard package: "
                "pip install 'hiresgan[tensorboard]' (or set metrics.tensorboard=false)"
            ) from exc
        self.log_dir = Path(run_dir) / EVENTS_DIR
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def write_registry(self, registry: CollectorRegistry, *, step: int) -> int:
        """One scalar per finite sample of the registry (histogram buckets left out: their _sum and
        _count are kept). Returns how many scalars were written."""
        if self._writer is None:
            return 0
        written = 0
        for family in registry.collect():
            for sample in family.samples:
                if sample.name.endswith("_bucket") or sample.name.endswith("_created"):
                    continue
                if not math.isfinite(sample.value):
                    continue
                self._writer.add_scalar(scalar_tag(sample.name, sample.labels), sample.value, global_step=step)
                written += 1
        self._writer.flush()
        return written

    def write_grid(self, grid_png: Path, *, step: int) -> None:
        """The sample grid as saved (PNG), so TensorBoard shows exactly what the run folder holds."""
        if self._writer is None:
            return
        from PIL import Image

        with Image.open(grid_png) as image:
            pixels = np.asarray(image.convert("RGB"))
        self._writer.add_image("samples", pixels, global_step=step, dataformats="HWC")
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
