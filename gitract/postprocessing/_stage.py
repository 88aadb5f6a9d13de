"""The whole stage as one object: thresholds, then the volume steps (what is scored and
what ``gitract predict`` writes are both this, read from the same ``metrics.json``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gitract.postprocessing._thresholds import ThresholdTuning
from gitract.postprocessing._volume import PostprocessChoice

__all__ = ["Postprocess"]


@dataclass(frozen=True)
class Postprocess:
    """Per-class thresholds (and 2D minimum sizes), then the chosen volume steps."""

    thresholds: ThresholdTuning
    steps: PostprocessChoice

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.thresholds.classes)

    def apply(self, proba: NDArray[np.floating], slice_numbers: Sequence[int] = ()
              ) -> NDArray[np.bool_]:
        """Masks of one scan's (S, H, W, C) maps; ``slice_numbers``: the stack's (the
        z-range and the 3D components place slices at them; default 0..S-1)."""
        return self.steps.apply(self.thresholds.apply(proba), proba, slice_numbers)

    @classmethod
    def from_metrics(cls, metrics: Mapping) -> Postprocess:
        """From an evaluation step's ``metrics.json`` (``tuning`` and ``postprocess``; a
        step written before the volume steps existed has them all off)."""
        thresholds = ThresholdTuning.from_dict(metrics["tuning"])
        return cls(thresholds, PostprocessChoice.from_dict(metrics.get("postprocess"),
                                                           thresholds.classes))
