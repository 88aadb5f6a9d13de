"""The validation sweep's settings, the same section for every track kind."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from gitract.postprocessing import DEFAULT_GRID
from gitract.utils.schema import at_least, between, check_dataclass, join, problem_of

__all__ = ["POSTPROCESS_KEYS", "TUNING_KEYS", "PostprocessSettings", "TuningSettings"]

_RULES = {"threshold_grid": between(0.0, 1.0), "min_sizes": at_least(0),
          "hausdorff_max_side": at_least(1)}
_POSTPROCESS_RULES = {"threshold_shifts": between(-0.5, 0.5), "gate_cuts": between(0.0, 1.0), "gate_areas": between(0.0, 1.0),
                      "z_margins": between(0.0, 1.0), "component_fractions": between(0.0, 1.0)}


@dataclass(frozen=True)
class PostprocessSettings:
    """The volume steps after the thresholds (:mod:`gitract.postprocessing`), each on or
    off, and the candidates each step's per-class value is chosen from on the validation
    cases. The neutral value (step off) is always a candidate, so a class keeps its mask
    untouched where no candidate helps on validation.

    Attributes
    ----------
    gate : bool
        Empty-slice gate: a slice keeps a class's mask only when its maximum
        probability reaches a cut (``gate_cuts``) and its area a share of the slice's
        pixels (``gate_areas``).
    z_range : bool
        Drop slices outside the relative slice range where the class occurs in the
        training cases, widened by a margin (``z_margins``, shares of the stack).
    components : bool
        Drop 3D components smaller than a share of the volume's largest
        (``component_fractions``; 1: keep only the largest).
    threshold_shifts : tuple of float
        Moves of each class's tuned threshold tried with the steps (with strays cleaned a
        lower threshold may score better; 0 is always tried).
    """

    gate: bool = True
    gate_cuts: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9, 0.95)
    gate_areas: tuple[float, ...] = (0.001, 0.004)
    z_range: bool = True
    z_margins: tuple[float, ...] = (0.0, 0.05, 0.1)
    components: bool = True
    component_fractions: tuple[float, ...] = (0.05, 0.2, 0.5, 1.0)
    threshold_shifts: tuple[float, ...] = (-0.1, -0.2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, path: str = "") -> PostprocessSettings:
        """Settings from the keys given (the rest default); a bad key is named by its path."""
        checked = check_dataclass(cls, data, path, rules=_POSTPROCESS_RULES)
        return cls(**checked)

    def candidates(self) -> dict[str, list[float]]:
        """Per step column, the values to try (the neutral one first; only it when the
        step is off)."""
        shifts = [0.0, *(s for s in self.threshold_shifts if s != 0)] if self.any_on else [0.0]
        return {"threshold_shift": shifts,
                "gate_cut": [0.0, *(self.gate_cuts if self.gate else ())],
                "gate_area": [0.0, *(self.gate_areas if self.gate else ())],
                "z_margin": [math.inf, *(self.z_margins if self.z_range else ())],
                "component_fraction": [0.0, *(self.component_fractions
                                              if self.components else ())]}

    @property
    def any_on(self) -> bool:
        return self.gate or self.z_range or self.components


#: The keys of a ``postprocess`` mapping.
POSTPROCESS_KEYS: tuple[str, ...] = tuple(f.name for f in fields(PostprocessSettings))


@dataclass(frozen=True)
class TuningSettings:
    """How a track's per-class threshold, minimum component size and volume steps are
    chosen on the validation cases (:func:`gitract.postprocessing.tuning_from_statistics`,
    :func:`gitract.postprocessing.postprocess_from_statistics`).

    Attributes
    ----------
    threshold_grid : tuple of float
        Candidate thresholds (0.05..0.95 by default).
    min_sizes : tuple of int or None
        Candidate minimum component sizes in pixels; None: the run's ``min_sizes``.
    hausdorff_max_side : int or None
        Pooling of the sweep's Hausdorff distances (None: none).
    postprocess : PostprocessSettings
        The volume steps (``params: {postprocess: {gate: false}}`` switches one off).
    """

    threshold_grid: tuple[float, ...] = tuple(float(t) for t in DEFAULT_GRID)
    min_sizes: tuple[int, ...] | None = None
    hausdorff_max_side: int | None = 128
    postprocess: PostprocessSettings = field(default_factory=PostprocessSettings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, path: str = "") -> TuningSettings:
        """Settings from the keys a track gives (the rest default); a bad key is named
        by its path under ``path``."""
        checked = check_dataclass(cls, data, path, rules=_RULES)
        if "postprocess" in checked:
            checked["postprocess"] = PostprocessSettings.from_dict(
                checked["postprocess"], join(path, "postprocess"))
        try:
            return cls(**checked)
        except (TypeError, ValueError) as exc:
            raise problem_of(exc, TUNING_KEYS, path) from None

    def options(self, min_sizes: Sequence[int]) -> dict[str, Any]:
        """The sweep's options as plain lists (``min_sizes``: the run's, unless set)."""
        sizes = [int(m) for m in min_sizes] if self.min_sizes is None else list(self.min_sizes)
        return {"threshold_grid": list(self.threshold_grid), "min_sizes": sizes,
                "hausdorff_max_side": self.hausdorff_max_side,
                "postprocess": {k: list(v) if isinstance(v, tuple) else v
                                for k, v in asdict(self.postprocess).items()}}


#: The tuning keys a track's ``params`` may hold (every kind).
TUNING_KEYS: tuple[str, ...] = tuple(f.name for f in fields(TuningSettings))
