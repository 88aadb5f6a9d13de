"""Per-slice and per-volume metrics of one case-day, in long format."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from gitract.metrics._conventions import MERGED_CLASS, MetricConventions
from gitract.metrics._distance import hausdorff_3d
from gitract.metrics._overlap import _check_pair

#: The conventions used when none are given (a module constant, not a call per
#: definition).
_DEFAULT_CONVENTIONS = MetricConventions()


def _z_positions(slice_numbers, n_slices: int):
    """``(positions, depth)`` that place the slices at their numbers in a volume of the
    numbers' span, or None when the numbers are contiguous (the array is that volume)."""
    if slice_numbers is None:
        return None
    numbers = np.asarray(slice_numbers, dtype=np.int64)
    if numbers.shape != (n_slices,):
        raise ValueError(f"slice_numbers has {numbers.size} entries for {n_slices} slices")
    if n_slices > 1 and np.any(np.diff(numbers) <= 0):
        raise ValueError(f"slice_numbers must increase, got {tuple(numbers.tolist())!r}")
    depth = int(numbers[-1] - numbers[0]) + 1 if n_slices else 0
    return None if depth == n_slices else (numbers - numbers[0], depth)


def _hausdorff(p, t, z, conventions: MetricConventions) -> float:
    """Normalised Hausdorff of two (S, H, W) volumes, placed at their slice numbers."""
    if z is not None:
        # Missing slices are empty in both volumes: distances run between the slices
        # present, at their true spacing; z is normalised by the span of the numbers.
        positions, depth = z
        full_p = np.zeros((depth, *p.shape[1:]), dtype=bool)
        full_t = np.zeros_like(full_p)
        full_p[positions], full_t[positions] = p, t
        p, t = full_p, full_t
    return hausdorff_3d(p, t, empty_score=conventions.hausdorff_both_empty,
                        size_guard=conventions.hausdorff_size_guard)


def score_volumes(
    truth_masks: NDArray,
    pred_masks: NDArray,
    *,
    classes: Sequence[str],
    ids: Sequence[str],
    key: str,
    case: str | None = None,
    conventions: MetricConventions = _DEFAULT_CONVENTIONS,
    slice_numbers: Sequence[int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-slice and per-volume metrics of one case-day, in long format.

    Parameters
    ----------
    truth_masks, pred_masks : ndarray of shape (S, H, W, C), dtype bool
    classes : sequence of str, length C
    ids : sequence of str, length S
    key : str
        Case-day key (``SliceStack.key``).
    case : str, optional
        Case (patient) id; defaults to ``key``.
    conventions : MetricConventions
    slice_numbers : sequence of int, length S, optional
        Increasing slice numbers: the Hausdorff z coordinate of a slice is then its
        number, so a sparse stack (slices missing) keeps its true slice spacing, and z
        is normalised by the span ``max - min + 1``. Equal to the default (array
        positions, normalised by S) on a stack without gaps.

    Returns
    -------
    per_slice : DataFrame
        Columns ``case, key, id, class, metric, value``; metrics ``dice`` and ``iou``,
        one row per (slice, class) each; excluded rows have value NaN.
    per_case : DataFrame
        Columns ``case, key, class, metric, value``; metrics ``dice`` (3D Dice of the
        volume, one row per class) and ``hausdorff`` (normalised): one row per class, or
        one row of class ``"merged"`` when ``conventions.hausdorff_merge_classes``.
    """
    per_slice, per_case, _, _ = _score_volume(
        truth_masks, pred_masks, classes=classes, ids=ids, key=key, case=case,
        conventions=conventions, slice_numbers=slice_numbers,
    )
    return per_slice, per_case


def _score_volume(truth_masks, pred_masks, *, classes, ids, key, case, conventions,
                  slice_numbers=None):
    """:func:`score_volumes` plus the both-empty flags of rows (S, C) and volumes (C,)."""
    pred, truth = _check_pair(pred_masks, truth_masks, name=f"pred_masks[{key!r}]")
    if truth.ndim != 4:
        raise ValueError(f"truth_masks must have shape (S, H, W, C), got {truth.shape}")
    n_slices, n_classes = truth.shape[0], truth.shape[3]
    classes, ids = tuple(classes), tuple(ids)
    if len(classes) != n_classes:
        raise ValueError(f"classes has {len(classes)} names for {n_classes} channels")
    if len(ids) != n_slices:
        raise ValueError(f"ids has {len(ids)} entries for {n_slices} slices")
    case = key if case is None else case
    z = _z_positions(slice_numbers, n_slices)

    counts = np.zeros((3, n_slices, n_classes), dtype=np.int64)  # intersection, pred, truth
    rows = []
    for c, name in enumerate(classes):
        # Channel-last reductions are strided and slow: work on one contiguous channel.
        p = np.ascontiguousarray(pred[..., c])
        t = np.ascontiguousarray(truth[..., c])
        flat_p, flat_t = p.reshape(n_slices, -1), t.reshape(n_slices, -1)
        counts[0, :, c] = np.count_nonzero(flat_p & flat_t, axis=1)
        counts[1, :, c] = np.count_nonzero(flat_p, axis=1)
        counts[2, :, c] = np.count_nonzero(flat_t, axis=1)
        inter, total = counts[0, :, c].sum(), counts[1:, :, c].sum()
        d3 = 2.0 * inter / total if total else conventions.dice_both_empty
        rows.append((case, key, name, "dice", float(d3)))
        if not conventions.hausdorff_merge_classes:
            rows.append((case, key, name, "hausdorff", _hausdorff(p, t, z, conventions)))
    if conventions.hausdorff_merge_classes:
        merged = _hausdorff(pred.any(axis=3), truth.any(axis=3), z, conventions)
        rows.append((case, key, MERGED_CLASS, "hausdorff", merged))
    per_case = pd.DataFrame(rows, columns=["case", "key", "class", "metric", "value"])

    inter, n_pred, n_truth = counts
    total, union = n_pred + n_truth, n_pred + n_truth - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(total > 0, 2.0 * inter / total, conventions.dice_both_empty)
        j = np.where(union > 0, inter / union, conventions.dice_both_empty)
    s_idx = np.repeat(np.arange(n_slices), n_classes)
    c_idx = np.tile(np.arange(n_classes), n_slices)
    base = {
        "case": case,
        "key": key,
        "id": np.asarray(ids, dtype=object)[s_idx],
        "class": np.asarray(classes, dtype=object)[c_idx],
    }
    per_slice = pd.concat(
        [
            pd.DataFrame({**base, "metric": "dice", "value": d.ravel()}),
            pd.DataFrame({**base, "metric": "iou", "value": j.ravel()}),
        ],
        ignore_index=True,
    )
    empty_rows = total == 0
    return per_slice, per_case, empty_rows, empty_rows.all(axis=0)
