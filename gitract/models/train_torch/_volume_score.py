"""The competition score of a segmentation net on its validation volumes, for the
checkpoint choice.

A checkpoint chosen on pooled hard Dice can be one whose stray components cost the
3D Hausdorff term (0.6 of the score) far more than its Dice gains. :class:`VolumeScore`
takes the thresholded predictions of the validation loader in its order, rebuilds each
case-day volume (slices at their numbers), scores it with
:func:`gitract.metrics.score_volumes` and keeps only sums: one volume is held at a time.

The volumes are scored on the network's grid (the prepared slices, resized), not the
stacks' own grids: the Hausdorff distance is normalised by the volume's shape, so the two
differ only by the resampling of the masks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gitract.metrics import DICE_WEIGHT, HAUSDORFF_WEIGHT, MetricConventions, score_volumes

__all__ = ["ValVolume", "VolumeScore"]


@dataclass(frozen=True)
class ValVolume:
    """One validation case-day: its key and the slice numbers of its slices, in the
    loader's order."""

    key: str
    slice_numbers: tuple[int, ...]


class VolumeScore:
    """Sums of the competition score over validation volumes, fed batch by batch.

    Parameters
    ----------
    volumes : sequence of ValVolume
        The volumes whose slices the loader yields, in its order (whole volumes).
    classes : sequence of str
    conventions : MetricConventions, optional
        Empty-mask rules (default: the run's defaults, both-empty rows left out).

    Examples
    --------
    >>> import numpy as np
    >>> vs = VolumeScore([ValVolume("a", (1, 2))], ["stomach"])
    >>> vs.start()
    >>> truth = np.zeros((2, 1, 8, 8), bool); truth[:, 0, 2:5, 2:5] = True
    >>> vs.add(truth, truth)
    >>> VolumeScore.score(vs.sums())
    1.0
    """

    def __init__(self, volumes: Sequence[ValVolume], classes: Sequence[str],
                 conventions: MetricConventions | None = None) -> None:
        self.volumes = list(volumes)
        self.classes = tuple(classes)
        self.conventions = MetricConventions() if conventions is None else conventions
        self.start()

    def start(self) -> None:
        """Forget what was added (call before each validation pass)."""
        self._volume, self._pred, self._truth = 0, [], []
        self._sums = np.zeros(4, dtype=np.float64)  # dice sum, rows, hausdorff sum, volumes

    def add(self, pred: NDArray, truth: NDArray, sizes: NDArray | None = None) -> None:
        """Hard predictions and truths of one batch, (N, C, H, W) bool, in loader order;
        ``sizes`` ((N, 2) rows and cols before padding) crops the padding away."""
        for n in range(pred.shape[0]):
            if self._volume >= len(self.volumes):
                raise ValueError("the loader yields more slices than the validation volumes hold")
            p, t = pred[n], truth[n]
            if sizes is not None:
                rows, cols = int(sizes[n][0]), int(sizes[n][1])
                p, t = p[:, :rows, :cols], t[:, :rows, :cols]
            self._pred.append(np.moveaxis(p, 0, -1))
            self._truth.append(np.moveaxis(t, 0, -1))
            if len(self._pred) == len(self.volumes[self._volume].slice_numbers):
                self._score_volume()

    def _score_volume(self) -> None:
        vol = self.volumes[self._volume]
        per_slice, per_case = score_volumes(
            np.stack(self._truth).astype(bool), np.stack(self._pred).astype(bool),
            classes=self.classes, ids=[f"{vol.key}_{n}" for n in vol.slice_numbers],
            key=vol.key, conventions=self.conventions, slice_numbers=vol.slice_numbers)
        dice = per_slice.loc[per_slice["metric"] == "dice", "value"].dropna()
        hd = per_case.loc[per_case["metric"] == "hausdorff", "value"].dropna()
        self._sums += (float(dice.sum()), len(dice), float(hd.sum()), len(hd))
        self._volume, self._pred, self._truth = self._volume + 1, [], []

    def sums(self) -> NDArray[np.float64]:
        """``(dice sum, dice rows, hausdorff sum, hausdorff volumes)``: additive over
        processes; every volume must be complete."""
        if self._volume != len(self.volumes) or self._pred:
            raise ValueError(f"{self._volume} of {len(self.volumes)} validation volumes were "
                             "complete: the loader must yield every slice of each volume")
        return self._sums.copy()

    @staticmethod
    def score(sums: Sequence[float]) -> float:
        """``0.4 * mean Dice + 0.6 * (1 - mean Hausdorff)`` of summed terms (a term
        without rows counts as its best value, as a volume set with no organ has)."""
        d_sum, d_n, h_sum, h_n = (float(v) for v in sums)
        dice = d_sum / d_n if d_n else 1.0
        hd = h_sum / h_n if h_n else 0.0
        value = DICE_WEIGHT * dice + HAUSDORFF_WEIGHT * (1.0 - hd)
        return float(value) if math.isfinite(value) else math.nan
