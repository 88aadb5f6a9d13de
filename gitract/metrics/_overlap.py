"""Overlap of two boolean masks: Dice and IoU (and the shared input check)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray


def _check_pair(pred, truth, name: str = "pred") -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    out = []
    for label, arr in ((name, pred), ("truth", truth)):
        arr = np.asarray(arr)
        if arr.dtype != bool:
            if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
                raise ValueError(
                    f"{label} must be a boolean mask (or 0/1 values), got dtype {arr.dtype}"
                )
            arr = arr.astype(bool)
        out.append(arr)
    if out[0].shape != out[1].shape:
        raise ValueError(f"{name} shape {out[0].shape} differs from truth shape {out[1].shape}")
    return out[0], out[1]


def dice(pred: NDArray, truth: NDArray, *, empty_score: float = math.nan) -> float:
    """Dice coefficient ``2 |P & T| / (|P| + |T|)`` of two boolean masks of any shape.

    Parameters
    ----------
    pred, truth : ndarray of bool (same shape)
    empty_score : float
        Returned when both masks are empty (NaN: the pair is left out of a mean).

    Returns
    -------
    float

    Examples
    --------
    >>> dice(np.array([1, 1, 0, 0], bool), np.array([1, 0, 0, 0], bool))
    0.6666666666666666
    >>> dice(np.zeros(3, bool), np.zeros(3, bool), empty_score=1.0)
    1.0
    """
    p, t = _check_pair(pred, truth)
    total = int(p.sum()) + int(t.sum())
    if total == 0:
        return float(empty_score)
    return float(2.0 * np.logical_and(p, t).sum() / total)


def iou(pred: NDArray, truth: NDArray, *, empty_score: float = math.nan) -> float:
    """Intersection over union (Jaccard index) of two boolean masks.

    Examples
    --------
    >>> iou(np.array([1, 1, 0, 0], bool), np.array([1, 0, 0, 0], bool))
    0.5
    """
    p, t = _check_pair(pred, truth)
    union = int(np.logical_or(p, t).sum())
    if union == 0:
        return float(empty_score)
    return float(np.logical_and(p, t).sum() / union)
