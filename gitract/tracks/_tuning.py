"""The validation sweep's settings, the same section for every track kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from gitract.postprocessing import DEFAULT_GRID
from gitract.utils.schema import at_least, between, check_dataclass, problem_of

__all__ = ["TUNING_KEYS", "TuningSettings"]

_RULES = {"threshold_grid": between(0.0, 1.0), "min_sizes": at_least(0),
          "hausdorff_max_side": at_least(1)}


@dataclass(frozen=True)
class TuningSettings:
    """How a track's per-class threshold and minimum component size are chosen on the
    validation cases (:func:`gitract.postprocessing.tuning_from_statistics`).

    Attributes
    ----------
    threshold_grid : tuple of float
        Candidate thresholds (0.05..0.95 by default).
    min_sizes : tuple of int or None
        Candidate minimum component sizes in pixels; None: the run's ``min_sizes``.
    hausdorff_max_side : int or None
        Pooling of the sweep's Hausdorff distances (None: none).
    """

    threshold_grid: tuple[float, ...] = tuple(float(t) for t in DEFAULT_GRID)
    min_sizes: tuple[int, ...] | None = None
    hausdorff_max_side: int | None = 128

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, path: str = "") -> TuningSettings:
        """Settings from the keys a track gives (the rest default); a bad key is named
        by its path under ``path``."""
        checked = check_dataclass(cls, data, path, rules=_RULES)
        try:
            return cls(**checked)
        except (TypeError, ValueError) as exc:
            raise problem_of(exc, TUNING_KEYS, path) from None

    def options(self, min_sizes: Sequence[int]) -> dict[str, Any]:
        """The sweep's options as plain lists (``min_sizes``: the run's, unless set)."""
        sizes = [int(m) for m in min_sizes] if self.min_sizes is None else list(self.min_sizes)
        return {"threshold_grid": list(self.threshold_grid), "min_sizes": sizes,
                "hausdorff_max_side": self.hausdorff_max_side}


#: The tuning keys a track's ``params`` may hold (every kind).
TUNING_KEYS: tuple[str, ...] = tuple(f.name for f in fields(TuningSettings))
