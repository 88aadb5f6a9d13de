"""Score weights, how pairs of empty masks count, and the graders' named presets.

The official grader of the competition is not public. Two readings of it are named here
(:data:`CONVENTIONS`):

``default``
    gitract's reading of the competition page: Dice per (slice, class) row and the 3D
    Hausdorff distance per (case-day, class) volume, both-empty pairs left out.
``mlebench``
    MLE-bench's re-implementation (``grade.py`` of its ``uw-madison-gi-tract-image-
    segmentation`` competition): the same Dice, but the Hausdorff term is computed once
    per case-day on the three classes OR-merged into one volume, and a prediction with
    more than 10 times the voxels of the truth scores 1 without a distance (a guard).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

DICE_WEIGHT = 0.4
HAUSDORFF_WEIGHT = 0.6

#: The ``class`` of the per-case Hausdorff rows when the classes are merged.
MERGED_CLASS = "merged"


def _check_empty_score(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in [0, 1] or nan, got {value!r}")
    value = float(value)
    if not (math.isnan(value) or 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1] or nan, got {value!r}")
    return value


@dataclass(frozen=True)
class MetricConventions:
    """How pairs of empty masks count and how the Hausdorff term is formed.

    Attributes
    ----------
    dice_both_empty : float
        Dice of a (slice, class) row where prediction and truth are both empty. NaN (the
        default, as the public re-implementations of the grader) leaves the row out of
        the mean; the competition page's text says 0; 1.0 rewards a correct "absent".
    hausdorff_both_empty : float
        Hausdorff of a volume where both are empty; NaN leaves it out.
    hausdorff_merge_classes : bool
        False: one Hausdorff volume per (case-day, class). True: the classes are
        OR-merged into one volume per case-day (MLE-bench), whose per-case rows carry
        the class :data:`MERGED_CLASS`; per-class Hausdorff means are then NaN.
    hausdorff_size_guard : float or None
        When a predicted volume holds more than ``hausdorff_size_guard`` times the
        voxels of the truth, its Hausdorff is 1 without a distance (MLE-bench uses 10,
        as a shortcut); None: no guard.

    Examples
    --------
    >>> MetricConventions.preset("mlebench").hausdorff_size_guard
    10.0
    >>> MetricConventions().preset_name
    'default'
    """

    dice_both_empty: float = math.nan
    hausdorff_both_empty: float = math.nan
    hausdorff_merge_classes: bool = False
    hausdorff_size_guard: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dice_both_empty",
                           _check_empty_score("dice_both_empty", self.dice_both_empty))
        object.__setattr__(self, "hausdorff_both_empty",
                           _check_empty_score("hausdorff_both_empty", self.hausdorff_both_empty))
        if not isinstance(self.hausdorff_merge_classes, bool):
            raise ValueError("hausdorff_merge_classes must be true or false, got "
                             f"{self.hausdorff_merge_classes!r}")
        guard = self.hausdorff_size_guard
        if guard is not None:
            if isinstance(guard, bool) or not isinstance(guard, numbers.Real) \
                    or not math.isfinite(guard) or guard <= 0:
                raise ValueError("hausdorff_size_guard must be a positive number or None, "
                                 f"got {guard!r}")
            object.__setattr__(self, "hausdorff_size_guard", float(guard))

    def __repr__(self) -> str:
        # The fields added after the first two are left out at their defaults, so that
        # the repr (part of a comparison's cache keys) of the old conventions is unchanged.
        parts = [f"dice_both_empty={self.dice_both_empty!r}",
                 f"hausdorff_both_empty={self.hausdorff_both_empty!r}"]
        if self.hausdorff_merge_classes:
            parts.append("hausdorff_merge_classes=True")
        if self.hausdorff_size_guard is not None:
            parts.append(f"hausdorff_size_guard={self.hausdorff_size_guard!r}")
        return f"MetricConventions({', '.join(parts)})"

    def __eq__(self, other) -> bool:
        # NaN != NaN would make no value equal to itself, or to its preset.
        if not isinstance(other, MetricConventions):
            return NotImplemented
        return repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    @classmethod
    def preset(cls, name: str) -> MetricConventions:
        """The named preset (:data:`CONVENTIONS`): ``default`` or ``mlebench``."""
        if name not in CONVENTIONS:
            raise ValueError(f"unknown metric conventions {name!r}; presets: "
                             f"{', '.join(CONVENTIONS)}")
        return CONVENTIONS[name]

    @classmethod
    def from_mapping(cls, mapping: Mapping | None) -> MetricConventions:
        """Conventions from a config's ``metrics:`` mapping: an optional ``preset`` name,
        then any field overriding it; an unknown key is an error naming it.

        Examples
        --------
        >>> MetricConventions.from_mapping({"preset": "mlebench"}).preset_name
        'mlebench'
        >>> MetricConventions.from_mapping({"dice_both_empty": 0}).dice_both_empty
        0.0
        """
        mapping = dict(mapping or {})
        base = cls.preset(str(mapping.pop("preset", "default")))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise ValueError(f"unknown metrics key(s) {unknown}; known: preset, "
                             f"{', '.join(sorted(known))}")
        return replace(base, **mapping) if mapping else base

    @property
    def preset_name(self) -> str | None:
        """Name of the preset these conventions equal, or None (custom)."""
        return next((name for name, value in CONVENTIONS.items() if value == self), None)

    def describe(self) -> str:
        """One sentence for reports, naming the preset.

        Examples
        --------
        >>> MetricConventions().describe().split(". ")[0]
        'Conventions: default (gitract)'
        """

        def _say(value: float) -> str:
            return "left out of the mean" if math.isnan(value) else f"counted as {value:g}"

        name = self.preset_name
        head = (f"Conventions: {name} ({PRESET_SOURCES[name]})." if name is not None
                else "Conventions: custom.")
        volumes = ("case-day volumes with the classes OR-merged" if self.hausdorff_merge_classes
                   else "(case-day, class) volumes")
        guard = ("" if self.hausdorff_size_guard is None else
                 f"a prediction with more than {self.hausdorff_size_guard:g} times the "
                 "truth's voxels gives Hausdorff 1; ")
        return (
            f"{head} Dice is the mean over (slice, class) rows, Hausdorff the mean over "
            f"{volumes} (normalised coordinates, divided by sqrt(3)); "
            f"rows with both masks empty are {_say(self.dice_both_empty)}, "
            f"volumes with both masks empty are {_say(self.hausdorff_both_empty)}; "
            f"one side empty gives Dice 0 and Hausdorff 1; {guard}"
            "score = 0.4 Dice + 0.6 (1 - Hausdorff)."
        )


#: The named presets (``gitract score --conventions NAME``, ``metrics: {preset: NAME}``).
CONVENTIONS: dict[str, MetricConventions] = {
    "default": MetricConventions(),
    "mlebench": MetricConventions(hausdorff_merge_classes=True, hausdorff_size_guard=10.0),
}

#: What each preset follows (stated in reports).
PRESET_SOURCES: dict[str, str] = {
    "default": "gitract",
    "mlebench": "MLE-bench's re-implementation of the grader",
}
