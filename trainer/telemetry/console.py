"""The console progress bar of rank 0: kimg done, images/s, losses and ETA."""

from __future__ import annotations

import sys

from tqdm import tqdm


class ProgressBar:
    def __init__(self, *, total_kimg: float, start_kimg: float, enabled: bool):
        self._bar = None
        if enabled:
            self._bar = tqdm(
                total=round(total_kimg, 3),
                initial=round(start_kimg, 3),
                unit="kimg",
                dynamic_ncols=True,
                file=sys.stderr,
                mininterval=1.0,
                bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} kimg [{elapsed}<{remaining}{postfix}]",
            )
        self._last = start_kimg

    def update(self, kimg: float, record: dict) -> None:
        if self._bar is None:
            return
        kimg = min(kimg, self._bar.total)  # the last batch may overshoot the target
        self._bar.update(round(kimg - self._last, 3))
        self._last = kimg
        losses = record["losses"]
        shown = {"img/s": f"{record['images_per_second']:.1f}"}
        for key in ("G/adversarial", "D/adversarial", "D/r1", "G/path_length"):
            if key in losses:
                shown[key] = f"{losses[key]:.3f}"
        self._bar.set_postfix(shown, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
