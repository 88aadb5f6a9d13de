"""Segmentation metrics of the UW-Madison GI Tract competition.

The competition score is ``0.4 * Dice + 0.6 * (1 - Hausdorff)``:

* Dice is computed per (slice, class) row and averaged over all rows;
* the 3D Hausdorff distance is computed per (case-day, class) volume on voxel coordinates
  divided by the volume shape ``(S, H, W)`` axis by axis, divided by ``sqrt(3)`` so that
  it lies in [0, 1], and averaged over all volumes.

Means are taken over *rows* (not per class and then averaged), as the competition
grader does; :attr:`ScoreResult.per_class` gives each class's own mean and score.

Empty masks follow :class:`MetricConventions`. The defaults are those of the public
re-implementation of the grader: a pair where both masks are empty is left out of the
mean (NaN), one side empty gives Dice 0 and Hausdorff 1.

Hausdorff distances are exact: the directed distance ``A -> B`` is the largest value of
the exact Euclidean distance transform of ``not B`` (anisotropic sampling ``1/S, 1/H,
1/W``) over the voxels of ``A``, computed on the bounding box of ``A | B`` only; this
equals ``scipy.spatial.distance.directed_hausdorff`` on normalised coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import ndimage

from gitract.data.record import DataError, SliceStack
from gitract.data.rle import rle_decode

__all__ = [
    "MetricConventions",
    "ScoreResult",
    "centroid_distance_mm",
    "decode_submission",
    "dice",
    "hausdorff_3d",
    "iou",
    "score_stacks",
    "score_volumes",
]

DICE_WEIGHT = 0.4
HAUSDORFF_WEIGHT = 0.6


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


def _bounding_box(mask: NDArray[np.bool_]) -> tuple[slice, ...]:
    """Bounding box of a non-empty mask (faster than ``ndimage.find_objects``)."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        nz = np.flatnonzero(mask.any(axis=other))
        box.append(slice(int(nz[0]), int(nz[-1]) + 1))
    return tuple(box)


#: Use a KD-tree when the voxels to query are fewer than this fraction of the box.
_KDTREE_FRACTION = 0.05


def _directed_max(src: NDArray[np.bool_], dst: NDArray[np.bool_], scale, method: str) -> float:
    """Largest distance from a ``src`` voxel to its nearest ``dst`` voxel (both non-empty).

    Both methods are exact. ``"edt"``: the Euclidean distance transform of ``not dst``
    (anisotropic sampling ``scale``) read at ``src``. ``"kdtree"``: the voxels of
    ``src - dst`` queried against the surface voxels of ``dst``: the nearest ``dst`` voxel
    of an outside point is always a surface voxel (from an interior voxel, one step
    towards the point along any axis where they differ stays in ``dst`` and is closer).
    ``"auto"`` picks the KD-tree when few voxels lie outside (a good prediction).
    """
    outside = src & ~dst
    n_outside = int(np.count_nonzero(outside))
    if n_outside == 0:
        return 0.0
    if method == "auto":
        method = "kdtree" if n_outside < _KDTREE_FRACTION * src.size else "edt"
    if method == "edt":
        dist = ndimage.distance_transform_edt(~dst, sampling=scale)
        return float(dist[outside].max())
    from scipy.spatial import cKDTree

    structure = ndimage.generate_binary_structure(dst.ndim, 1)
    surface = dst & ~ndimage.binary_erosion(dst, structure, border_value=0)
    tree = cKDTree(np.argwhere(surface) * scale)
    dist, _ = tree.query(np.argwhere(outside) * scale)
    return float(dist.max())


def hausdorff_3d(
    pred: NDArray,
    truth: NDArray,
    *,
    empty_score: float = math.nan,
    one_empty: float = 1.0,
    method: str = "auto",
) -> float:
    """Normalised symmetric Hausdorff distance of two volumes, as in the competition.

    Voxel coordinates are divided by the volume shape axis by axis (so they lie in
    [0, 1)) and the distance by ``sqrt(3)``, so the result lies in [0, 1]. Exact.

    Parameters
    ----------
    pred, truth : ndarray of shape (S, H, W), dtype bool
        (Any number of dimensions works; the divisor is ``sqrt(ndim)``.)
    empty_score : float
        Returned when both are empty (NaN: the volume is left out of a mean).
    one_empty : float
        Returned when exactly one is empty.
    method : {"auto", "edt", "kdtree"}
        Algorithm (all exact): distance transform, KD-tree over surface voxels, or the
        faster of the two for these masks.

    Returns
    -------
    float

    Examples
    --------
    >>> a = np.zeros((2, 4, 4), bool); a[0, 0, 0] = True
    >>> b = np.zeros((2, 4, 4), bool); b[0, 0, 2] = True
    >>> round(hausdorff_3d(a, b) * math.sqrt(3), 12)  # two columns apart in a width of 4
    0.5
    """
    if method not in ("auto", "edt", "kdtree"):
        raise ValueError(f"method must be 'auto', 'edt' or 'kdtree', got {method!r}")
    p, t = _check_pair(pred, truth)
    has_p, has_t = bool(p.any()), bool(t.any())
    if not has_p and not has_t:
        return float(empty_score)
    if not (has_p and has_t):
        return float(one_empty)
    if np.array_equal(p, t):
        return 0.0
    # The nearest voxel of either mask lies inside the bounding box of the union, so the
    # work can run on that box only.
    box = _bounding_box(p | t)
    scale = 1.0 / np.asarray(p.shape, dtype=float)
    p, t = p[box], t[box]
    d = max(_directed_max(p, t, scale, method), _directed_max(t, p, scale, method))
    return float(d / math.sqrt(p.ndim))


def centroid_distance_mm(pred: NDArray, truth: NDArray, spacing: Sequence[float]) -> float:
    """Distance in mm between the centroids of two masks ("organ localisation error").

    Parameters
    ----------
    pred, truth : ndarray of shape (H, W) or (S, H, W), dtype bool
    spacing : sequence of float
        Voxel size in mm along each axis (length ``ndim``).

    Returns
    -------
    float
        NaN when either mask is empty.

    Examples
    --------
    >>> a = np.zeros((4, 4), bool); a[0, 0] = True
    >>> b = np.zeros((4, 4), bool); b[3, 0] = True
    >>> centroid_distance_mm(a, b, (2.0, 1.0))
    6.0
    """
    p, t = _check_pair(pred, truth)
    spacing = np.asarray(spacing, dtype=float)
    if spacing.shape != (p.ndim,):
        raise ValueError(f"spacing must have {p.ndim} values, got {tuple(spacing.tolist())!r}")
    if not p.any() or not t.any():
        return math.nan
    cp = np.argwhere(p).mean(axis=0)
    ct = np.argwhere(t).mean(axis=0)
    return float(np.linalg.norm((cp - ct) * spacing))


@dataclass(frozen=True)
class MetricConventions:
    """How pairs of empty masks count.

    Attributes
    ----------
    dice_both_empty : float
        Dice of a (slice, class) row where prediction and truth are both empty. NaN (the
        default, as the public re-implementation of the grader) leaves the row out of the
        mean; the competition page's text says 0; 1.0 rewards a correct "absent".
    hausdorff_both_empty : float
        Hausdorff of a (case-day, class) volume where both are empty; NaN leaves it out.
    """

    dice_both_empty: float = math.nan
    hausdorff_both_empty: float = math.nan

    def describe(self) -> str:
        """One sentence for reports.

        Examples
        --------
        >>> MetricConventions().describe()[:52]
        'Dice is the mean over (slice, class) rows, Hausdorff'
        """

        def _say(value: float) -> str:
            return "left out of the mean" if math.isnan(value) else f"counted as {value:g}"

        return (
            "Dice is the mean over (slice, class) rows, Hausdorff the mean over "
            "(case-day, class) volumes (normalised coordinates, divided by sqrt(3)); "
            f"rows with both masks empty are {_say(self.dice_both_empty)}, "
            f"volumes with both masks empty are {_say(self.hausdorff_both_empty)}; "
            "one side empty gives Dice 0 and Hausdorff 1; "
            "score = 0.4 Dice + 0.6 (1 - Hausdorff)."
        )


def score_volumes(
    truth_masks: NDArray,
    pred_masks: NDArray,
    *,
    classes: Sequence[str],
    ids: Sequence[str],
    key: str,
    case: str | None = None,
    conventions: MetricConventions = MetricConventions(),
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

    Returns
    -------
    per_slice : DataFrame
        Columns ``case, key, id, class, metric, value``; metrics ``dice`` and ``iou``,
        one row per (slice, class) each; excluded rows have value NaN.
    per_case : DataFrame
        Columns ``case, key, class, metric, value``; metrics ``dice`` (3D Dice of the
        volume) and ``hausdorff`` (normalised), one row per class each.
    """
    per_slice, per_case, _, _ = _score_volume(
        truth_masks, pred_masks, classes=classes, ids=ids, key=key, case=case,
        conventions=conventions,
    )
    return per_slice, per_case


def _score_volume(truth_masks, pred_masks, *, classes, ids, key, case, conventions):
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
        hd = hausdorff_3d(p, t, empty_score=conventions.hausdorff_both_empty)
        rows.append((case, key, name, "hausdorff", hd))
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
        }


def score_stacks(
    truth: Sequence[SliceStack],
    pred_masks: Mapping[str, NDArray],
    *,
    conventions: MetricConventions = MetricConventions(),
) -> ScoreResult:
    """Score predicted masks against labelled stacks with the competition metric.

    Parameters
    ----------
    truth : list of SliceStack
        Labelled stacks (``masks`` not None), with distinct keys.
    pred_masks : mapping of str to ndarray of shape (S, H, W, C), dtype bool
        Predicted masks keyed by ``SliceStack.key``; extra keys are ignored.
    conventions : MetricConventions

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


def decode_submission(
    submission: pd.DataFrame,
    truth: Sequence[SliceStack],
    *,
    column: str | None = None,
    order: str = "C",
    where: str = "submission",
) -> dict[str, NDArray[np.bool_]]:
    """Decode a Kaggle submission frame (``id, class, predicted``) into masks per stack.

    Parameters
    ----------
    submission : DataFrame
        Columns ``id``, ``class`` and the RLE column (``predicted``, or ``segmentation``
        as written by ``gitract.data.kaggle.stacks_to_rle_frame``).
    truth : list of SliceStack
        Gives the ids, classes and slice shapes.
    column : str, optional
        RLE column name; default ``predicted`` if present, else ``segmentation``.
    order : {"C", "F"}
        RLE pixel order.
    where : str
        Name of the source for error messages (e.g. the CSV path).

    Returns
    -------
    dict of str to ndarray of shape (S, H, W, C), dtype bool
        Keyed by ``SliceStack.key``.

    Raises
    ------
    DataError
        Missing columns, a (id, class) row missing or given twice, unknown ids or classes,
        or a malformed RLE; the message names the id and class.
    """
    if column is None:
        column = "predicted" if "predicted" in submission.columns else "segmentation"
    missing = {"id", "class", column} - set(submission.columns)
    if missing:
        raise DataError(
            f"{where}: missing column(s) {sorted(missing)}; found {list(submission.columns)}"
        )
    classes = truth[0].classes if truth else ()
    index: dict[str, tuple[SliceStack, int]] = {}
    for stack in truth:
        for s, slice_id in enumerate(stack.ids):
            index[slice_id] = (stack, s)
    out = {
        stack.key: np.zeros((stack.n_slices, *stack.shape, len(classes)), dtype=bool)
        for stack in truth
    }
    class_pos = {c: k for k, c in enumerate(classes)}
    seen: set[tuple[str, str]] = set()
    for row_no, (slice_id, cls, rle) in enumerate(
        zip(submission["id"], submission["class"], submission[column], strict=True), start=2
    ):
        slice_id, cls = str(slice_id), str(cls)
        label = f"{where} line {row_no} (id {slice_id!r}, class {cls!r})"
        if slice_id not in index:
            raise DataError(f"{label}: id is not in the truth data")
        if cls not in class_pos:
            raise DataError(f"{label}: unknown class; expected one of {list(classes)}")
        if (slice_id, cls) in seen:
            raise DataError(f"{label}: row given twice")
        seen.add((slice_id, cls))
        stack, s = index[slice_id]
        out[stack.key][s, :, :, class_pos[cls]] = rle_decode(
            rle, stack.shape, order=order, where=label
        )
    for stack in truth:
        for slice_id in stack.ids:
            for cls in classes:
                if (slice_id, cls) not in seen:
                    raise DataError(f"{where}: no row for id {slice_id!r}, class {cls!r}")
    return out
