"""The competition score of a set of case-days (:func:`score_stacks`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from gitract.data.record import SliceStack
from gitract.metrics._conventions import (
    DICE_WEIGHT,
    HAUSDORFF_WEIGHT,
    MetricConventions,
)
from gitract.metrics._volumes import _score_volume

#: The conventions used when none are given (a module constant, not a call per
#: definition).
_DEFAULT_CONVENTIONS = MetricConventions()


def _score(d: float, hd: float) -> float:
    return float(DICE_WEIGHT * d + HAUSDORFF_WEIGHT * (1.0 - hd))


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else math.nan


@dataclass
class ScoreResult:
    """Competition metric of a set of case-days.

    Attributes
    ----------
    dice : float
        Mean Dice over all (slice, class) rows that are not excluded.
    hausdorff : float
        Mean normalised Hausdorff over all (case-day, class) volumes not excluded.
    score : float
        ``0.4 * dice + 0.6 * (1 - hausdorff)``.
    per_class : dict
        ``{class: {"dice", "hausdorff", "score", "n_slices", "n_empty", "n_volumes",
        "n_empty_volumes"}}``: the same means restricted to one class; ``n_empty`` counts
        (slice, class) rows where both masks are empty, ``n_empty_volumes`` such volumes.
        With the classes merged for the Hausdorff term, a class has no Hausdorff of its
        own: its ``hausdorff`` and ``score`` are NaN.
    per_slice, per_case : DataFrame
        Long format (see :func:`score_volumes`).
    n_empty : int
        (slice, class) rows where both masks are empty.
    n_empty_volumes : int
        (case-day, class) volumes where both masks are empty.
    conventions : MetricConventions
    """

    dice: float
    hausdorff: float
    score: float
    per_class: dict[str, dict[str, float | int]]
    per_slice: pd.DataFrame = field(repr=False)
    per_case: pd.DataFrame = field(repr=False)
    n_empty: int = 0
    n_empty_volumes: int = 0
    conventions: MetricConventions = MetricConventions()

    def to_dict(self) -> dict:
        """JSON-able summary (NaN becomes None): dice, hausdorff, score, per_class, ...."""

        def _clean(v):
            if isinstance(v, float) and math.isnan(v):
                return None
            return v

        return {
            "dice": _clean(self.dice),
            "hausdorff": _clean(self.hausdorff),
            "score": _clean(self.score),
            "per_class": {
                c: {k: _clean(v) for k, v in stats.items()} for c, stats in self.per_class.items()
            },
            "n_empty": self.n_empty,
            "n_empty_volumes": self.n_empty_volumes,
            "conventions": self.conventions.describe(),
            "preset": self.conventions.preset_name,
        }


def score_stacks(
    truth: Sequence[SliceStack],
    pred_masks: Mapping[str, NDArray],
    *,
    conventions: MetricConventions = _DEFAULT_CONVENTIONS,
    hausdorff_z: str = "positions",
) -> ScoreResult:
    """Score predicted masks against labelled stacks with the competition metric.

    Parameters
    ----------
    truth : list of SliceStack
        Labelled stacks (``masks`` not None), with distinct keys.
    pred_masks : mapping of str to ndarray of shape (S, H, W, C), dtype bool
        Predicted masks keyed by ``SliceStack.key``; extra keys are ignored.
    conventions : MetricConventions
    hausdorff_z : {"positions", "slice_numbers"}
        The z coordinate of a slice in the Hausdorff term: its position in the array
        (normalised by S), or its slice number (normalised by the span of the numbers),
        which keeps the true slice spacing of a sparse stack (slices missing). The two
        agree on stacks without gaps.

    Returns
    -------
    ScoreResult

    Raises
    ------
    ValueError
        A truth stack has no masks, no prediction, or a prediction of another shape.
    """
    if not truth:
        raise ValueError("truth must hold at least one SliceStack, got an empty list")
    if hausdorff_z not in ("positions", "slice_numbers"):
        raise ValueError(f"hausdorff_z must be 'positions' or 'slice_numbers', got {hausdorff_z!r}")
    classes = truth[0].classes
    slices, cases, empty_rows, empty_vols, seen = [], [], [], [], set()
    for stack in truth:
        if stack.masks is None:
            raise ValueError(f"truth stack {stack.key!r} has no masks")
        if stack.classes != classes:
            raise ValueError(f"truth stack {stack.key!r} classes {stack.classes} != {classes}")
        if stack.key in seen:
            raise ValueError(f"truth holds the stack key {stack.key!r} twice")
        seen.add(stack.key)
        if stack.key not in pred_masks:
            raise ValueError(f"pred_masks has no prediction for stack {stack.key!r}")
        ps, pc, er, ev = _score_volume(
            stack.masks, pred_masks[stack.key], classes=classes, ids=stack.ids,
            key=stack.key, case=stack.case, conventions=conventions,
            slice_numbers=stack.slice_numbers if hausdorff_z == "slice_numbers" else None,
        )
        slices.append(ps)
        cases.append(pc)
        empty_rows.append(er)
        empty_vols.append(ev)
    per_slice = pd.concat(slices, ignore_index=True)
    per_case = pd.concat(cases, ignore_index=True)
    # Both-empty flags come from the masks, not from NaN values, so that the counts do
    # not depend on the conventions.
    empty_rows = np.concatenate(empty_rows)  # (total slices, C)
    empty_vols = np.stack(empty_vols)  # (n stacks, C)

    d_rows = per_slice[per_slice["metric"] == "dice"]
    hd_rows = per_case[per_case["metric"] == "hausdorff"]
    per_class: dict[str, dict[str, float | int]] = {}
    for c, name in enumerate(classes):
        dc = _mean(d_rows.loc[d_rows["class"] == name, "value"])
        hc = _mean(hd_rows.loc[hd_rows["class"] == name, "value"])
        per_class[name] = {
            "dice": dc,
            "hausdorff": hc,
            "score": _score(dc, hc),
            "n_slices": int(empty_rows.shape[0]),
            "n_empty": int(empty_rows[:, c].sum()),
            "n_volumes": int(empty_vols.shape[0]),
            "n_empty_volumes": int(empty_vols[:, c].sum()),
        }
    d_all, hd_all = _mean(d_rows["value"]), _mean(hd_rows["value"])
    return ScoreResult(
        dice=d_all,
        hausdorff=hd_all,
        score=_score(d_all, hd_all),
        per_class=per_class,
        per_slice=per_slice,
        per_case=per_case,
        n_empty=int(empty_rows.sum()),
        n_empty_volumes=int(empty_vols.sum()),
        conventions=conventions,
    )
