"""Probability maps -> masks: per-class thresholds, small-component removal, tuning.

Thresholds (and the minimum component size) are chosen per class on *validation*
stacks by a sweep that maximises that class's competition score
``0.4 Dice + 0.6 (1 - Hausdorff)`` (:mod:`gitract.metrics`). The per-class score of
``score_stacks`` depends only on that class's channel, so the classes are tuned
independently. :func:`tune_thresholds` works only on the stacks it is given; the
evaluation passes validation stacks, never test stacks.

Speed: Dice is computed exactly at full resolution for every candidate (pixel counts).
The 3D Hausdorff distance, the costly part, is computed for every candidate on volumes
max-pooled in-plane to at most ``hausdorff_max_side`` pixels (prediction and truth
alike, default 128: a 512x512 slice is pooled 4x4). Normalised coordinates make the
distance nearly scale-free: pooling by ``f`` changes it by at most about
``f / side`` (under 0.01 at 512 px), far below the gaps between candidates that matter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import ndimage as ndi

from gitract.data.record import SliceStack
from gitract.metrics import (
    DICE_WEIGHT,
    HAUSDORFF_WEIGHT,
    MetricConventions,
    hausdorff_3d,
)

__all__ = [
    "DEFAULT_GRID",
    "ThresholdTuning",
    "apply_thresholds",
    "remove_small_components",
    "tune_thresholds",
]

#: Default threshold candidates of :func:`tune_thresholds`.
DEFAULT_GRID: NDArray[np.float64] = np.round(np.linspace(0.05, 0.95, 19), 10)
#: The default metric conventions (frozen, so one shared instance serves as a default).
DEFAULT_CONVENTIONS = MetricConventions()

#: 8-connectivity in the slice plane.
_STRUCTURE_2D = np.ones((3, 3), dtype=bool)


def _per_class(value, n_classes: int, name: str, kind=float) -> list:
    if np.ndim(value) == 0:
        return [kind(value)] * n_classes
    values = [kind(v) for v in value]
    if len(values) != n_classes:
        raise ValueError(f"{name} must have one value per class ({n_classes}), got {len(values)}")
    return values


def remove_small_components(mask: NDArray[np.bool_], *, min_size: int) -> NDArray[np.bool_]:
    """Drop 8-connected components with fewer than ``min_size`` pixels from a 2D mask.

    Parameters
    ----------
    mask : ndarray of shape (H, W), dtype bool
    min_size : int
        Components smaller than this are removed; 0 or 1 keeps everything.

    Returns
    -------
    ndarray of shape (H, W), dtype bool
        A new array.

    Examples
    --------
    >>> m = np.zeros((4, 6), bool); m[0, 0] = True; m[1:4, 2:5] = True
    >>> int(remove_small_components(m, min_size=2).sum())
    9
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must have shape (H, W), got shape {mask.shape}")
    if min_size <= 1 or not mask.any():
        return mask.copy()
    labels, n = ndi.label(mask, structure=_STRUCTURE_2D)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def apply_thresholds(
    proba: NDArray[np.floating],
    thresholds: Sequence[float] | float,
    *,
    min_size: Sequence[int] | int = 0,
) -> NDArray[np.bool_]:
    """Binary masks from per-class probability maps.

    A pixel belongs to class ``k`` when ``proba[..., k] > thresholds[k]``; then, per
    slice and class, 8-connected components under ``min_size[k]`` pixels are removed.

    Parameters
    ----------
    proba : ndarray of shape (H, W, C) or (S, H, W, C), float
    thresholds : float or sequence of C floats
    min_size : int or sequence of C ints, default 0

    Returns
    -------
    masks : ndarray of the shape of ``proba``, dtype bool

    Raises
    ------
    ValueError
        On a bad shape or a wrong number of thresholds.

    Examples
    --------
    >>> p = np.array([[[0.2, 0.7], [0.6, 0.4]]])
    >>> apply_thresholds(p, [0.5, 0.3]).tolist()
    [[[False, True], [True, True]]]
    """
    proba = np.asarray(proba)
    if proba.ndim not in (3, 4):
        raise ValueError(f"proba must have shape (H, W, C) or (S, H, W, C), got {proba.shape}")
    n_classes = proba.shape[-1]
    thresholds = _per_class(thresholds, n_classes, "thresholds")
    sizes = _per_class(min_size, n_classes, "min_size", int)
    masks = proba > np.asarray(thresholds, dtype=proba.dtype if proba.dtype.kind == "f" else float)
    if any(s > 1 for s in sizes):
        stacked = masks.reshape((-1,) + masks.shape[-3:])
        for k, size in enumerate(sizes):
            if size > 1:
                for s in range(stacked.shape[0]):
                    stacked[s, :, :, k] = remove_small_components(stacked[s, :, :, k], min_size=size)
        masks = stacked.reshape(masks.shape)
    return masks


@dataclass
class ThresholdTuning:
    """Per-class thresholds and minimum component sizes chosen on validation stacks.

    Attributes
    ----------
    classes : tuple of str
    thresholds : tuple of float
        One per class, ordered like ``classes``.
    min_sizes : tuple of int
        One per class.
    sweep : DataFrame
        One row per (class, threshold, min_size): ``dice``, ``hausdorff``, ``score``
        on the validation stacks (Hausdorff on pooled volumes, see the module notes).
    keys : tuple of str
        Keys of the stacks the choice was made on (provenance: validation only).
    hausdorff_pool : int
        In-plane pooling factor used for the Hausdorff distances.
    """

    classes: tuple[str, ...]
    thresholds: tuple[float, ...]
    min_sizes: tuple[int, ...]
    sweep: pd.DataFrame = field(repr=False)
    keys: tuple[str, ...] = ()
    hausdorff_pool: int = 1

    def apply(self, proba: NDArray[np.floating]) -> NDArray[np.bool_]:
        """:func:`apply_thresholds` with the tuned values."""
        return apply_thresholds(proba, self.thresholds, min_size=self.min_sizes)

    def to_dict(self) -> dict:
        """JSON-able summary (without the sweep)."""
        return {
            "classes": list(self.classes),
            "thresholds": [float(t) for t in self.thresholds],
            "min_sizes": [int(s) for s in self.min_sizes],
            "keys": list(self.keys),
            "hausdorff_pool": int(self.hausdorff_pool),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ThresholdTuning:
        """Inverse of :meth:`to_dict` (the sweep is not kept)."""
        return cls(tuple(data["classes"]), tuple(float(t) for t in data["thresholds"]),
                   tuple(int(m) for m in data["min_sizes"]),
                   sweep=pd.DataFrame(columns=_SWEEP_COLUMNS),
                   keys=tuple(data.get("keys", ())),
                   hausdorff_pool=int(data.get("hausdorff_pool", 1)))

    @classmethod
    def fixed(cls, classes: Sequence[str], threshold: float = 0.5, min_size: int = 0) -> ThresholdTuning:
        """Untuned values (e.g. when no validation stacks exist)."""
        n = len(classes)
        return cls(tuple(classes), (float(threshold),) * n, (int(min_size),) * n,
                   sweep=pd.DataFrame(columns=_SWEEP_COLUMNS))


_SWEEP_COLUMNS = ["class", "threshold", "min_size", "dice", "hausdorff", "score"]


def _pool(volume: NDArray, factor: int) -> NDArray:
    """In-plane max pooling of (S, H, W) by ``factor`` (edges padded with 0): "any" for a
    bool volume."""
    if factor <= 1:
        return volume
    s, h, w = volume.shape
    hp, wp = -(-h // factor) * factor, -(-w // factor) * factor
    padded = np.zeros((s, hp, wp), dtype=volume.dtype)
    padded[:, :h, :w] = volume
    blocks = padded.reshape(s, hp // factor, factor, wp // factor, factor)
    # One elementwise maximum per offset in the block: several times faster than a
    # reduction over the two strided block axes.
    out = blocks[:, :, 0, :, 0].copy()
    for i in range(factor):
        for j in range(factor):
            np.maximum(out, blocks[:, :, i, :, j], out=out)
    return out


def _class_sweep_stats(proba, truth, grid, min_sizes, factor, conventions):
    """Sums for one (S, H, W) class channel of one volume: per (threshold, min_size),
    ``dice_sum, dice_n`` over its slices and ``hd_sum, hd_n`` for the volume (NaN values,
    both-empty pairs left out by the conventions, are not counted).

    Components are labelled once per threshold for the whole volume (8-connected within
    each slice, as :func:`remove_small_components`), and every ``min_size`` is read from
    the same labels; a Hausdorff distance is computed once per distinct pooled mask."""
    import hashlib

    pooled_truth = _pool(truth, factor)
    n = len(truth)
    truth_count = np.count_nonzero(truth.reshape(n, -1), axis=1)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # in-plane 8-connectivity, no link between slices
    hd_memo: dict[bytes, float] = {}
    found = {}
    for thr in grid:
        raw = proba > thr
        # Size of the component each pixel belongs to (0 off the mask): the mask for a
        # min_size is ``component >= min_size``, and its pooled mask is the pooled sizes
        # compared the same way, so the pooling runs once per threshold.
        component = raw.astype(np.int32)
        if any(size > 1 for size in min_sizes) and raw.any():
            labels, count = ndi.label(raw, structure=structure)
            sizes = np.bincount(labels.ravel(), minlength=count + 1)
            sizes[0] = 0
            component = sizes.astype(np.int32)[labels]
        pooled_component = _pool(component, factor)
        for size in min_sizes:
            pred = component >= max(size, 1)
            inter = np.count_nonzero((pred & truth).reshape(n, -1), axis=1)
            total = np.count_nonzero(pred.reshape(n, -1), axis=1) + truth_count
            with np.errstate(invalid="ignore", divide="ignore"):
                d = np.where(total > 0, 2.0 * inter / np.maximum(total, 1),
                             conventions.dice_both_empty)
            finite = ~np.isnan(d)
            pooled = pooled_component >= max(size, 1)
            digest = hashlib.sha1(np.packbits(pooled).tobytes()).digest()
            if digest not in hd_memo:
                hd_memo[digest] = hausdorff_3d(pooled, pooled_truth,
                                               empty_score=conventions.hausdorff_both_empty)
            hd = hd_memo[digest]
            found[(float(thr), int(size))] = (
                float(d[finite].sum()), int(finite.sum()),
                0.0 if math.isnan(hd) else float(hd), 0 if math.isnan(hd) else 1)
    return [(float(thr), int(size), *found[(float(thr), int(size))])
            for size in min_sizes for thr in grid]


_STATS_COLUMNS = ["class", "threshold", "min_size", "dice_sum", "dice_n", "hd_sum", "hd_n"]


def hausdorff_pool_factor(max_side: int, hausdorff_max_side: int | None) -> int:
    """The in-plane pooling factor of the tuning Hausdorff for volumes whose largest
    side is ``max_side``."""
    return 1 if hausdorff_max_side is None else max(1, -(-int(max_side) // int(hausdorff_max_side)))


def sweep_statistics(
    proba: NDArray[np.floating],
    stack: SliceStack,
    *,
    grid: Sequence[float] = DEFAULT_GRID,
    min_sizes: Sequence[int] = (0,),
    conventions: MetricConventions = DEFAULT_CONVENTIONS,
    pool_factor: int = 1,
) -> pd.DataFrame:
    """What threshold tuning needs from one validation volume, as sums (a few hundred rows).

    Summing these tables over volumes and choosing with :func:`tuning_from_statistics`
    gives what :func:`tune_thresholds` gives on all volumes at once, while only one
    volume's maps are held at a time.

    Returns
    -------
    DataFrame
        ``class, threshold, min_size, dice_sum, dice_n, hd_sum, hd_n``.
    """
    if stack.masks is None:
        raise ValueError(f"truth stack {stack.key!r} has no masks")
    p = np.asarray(proba)
    if p.shape != stack.masks.shape:
        raise ValueError(f"map of {stack.key!r} has shape {p.shape}, masks {stack.masks.shape}")
    grid = [float(t) for t in np.asarray(grid, dtype=float).ravel()]
    min_sizes = [int(s) for s in min_sizes]
    if not grid or not min_sizes:
        raise ValueError(f"grid and min_sizes must be non-empty, got {grid!r} and {min_sizes!r}")
    rows = []
    for k, name in enumerate(stack.classes):
        for r in _class_sweep_stats(np.ascontiguousarray(p[..., k]),
                                    np.ascontiguousarray(stack.masks[..., k]),
                                    grid, min_sizes, pool_factor, conventions):
            rows.append((name, *r))
    return pd.DataFrame(rows, columns=_STATS_COLUMNS)


def tuning_from_statistics(
    stats: pd.DataFrame, classes: Sequence[str], *, keys: Sequence[str] = (), pool_factor: int = 1
) -> ThresholdTuning:
    """Choose per class the (threshold, min_size) with the best validation score from
    summed :func:`sweep_statistics` tables (ties: threshold nearest 0.5, then the
    smallest min_size)."""
    total = stats.groupby(["class", "threshold", "min_size"], sort=False)[
        ["dice_sum", "dice_n", "hd_sum", "hd_n"]].sum().reset_index()
    thresholds, sizes, frames = [], [], []
    for name in classes:
        part = total[total["class"] == name]
        rows = []
        for thr, size, ds, dn, hs, hn in zip(part["threshold"], part["min_size"], part["dice_sum"],
                                            part["dice_n"], part["hd_sum"], part["hd_n"],
                                            strict=True):
            dc = ds / dn if dn else math.nan
            hc = hs / hn if hn else math.nan
            rows.append((float(thr), int(size), dc, hc,
                         float(DICE_WEIGHT * dc + HAUSDORFF_WEIGHT * (1.0 - hc))))
        thr, size = _choose(rows)
        thresholds.append(thr)
        sizes.append(size)
        frames.append(pd.DataFrame([(name, *r) for r in rows], columns=_SWEEP_COLUMNS))
    return ThresholdTuning(
        classes=tuple(classes), thresholds=tuple(thresholds), min_sizes=tuple(sizes),
        sweep=pd.concat(frames, ignore_index=True), keys=tuple(keys), hausdorff_pool=pool_factor)


def _choose(rows) -> tuple[float, int]:
    """Best score; a score that is NaN (every pair both-empty, nothing wrong) ranks as 1.
    Ties go to the threshold nearest 0.5, then the smallest min_size."""
    ranked = [(1.0 if math.isnan(r[4]) else r[4], r) for r in rows]
    best = max(v for v, _ in ranked)
    tied = [r for v, r in ranked if v >= best - 1e-12]
    tied.sort(key=lambda r: (abs(r[0] - 0.5), r[1], r[0]))
    return tied[0][0], tied[0][1]


def tune_thresholds(
    proba_by_key: Mapping[str, NDArray[np.floating]],
    truth_stacks: Sequence[SliceStack],
    *,
    grid: Sequence[float] = DEFAULT_GRID,
    min_sizes: Sequence[int] = (0,),
    conventions: MetricConventions = DEFAULT_CONVENTIONS,
    hausdorff_max_side: int | None = 128,
) -> ThresholdTuning:
    """Choose per-class thresholds (and min component sizes) maximising the score.

    For every class, every ``(threshold, min_size)`` candidate is scored on the given
    stacks with that class's competition score ``0.4 Dice + 0.6 (1 - Hausdorff)``
    (Dice: mean over (slice, class) rows; Hausdorff: mean over volumes; both-empty
    pairs as in ``conventions``), and the best is kept; ties go to the threshold
    nearest 0.5. Pass validation stacks only: nothing else is looked at.

    Parameters
    ----------
    proba_by_key : mapping of str to ndarray of shape (S, H, W, C), float
        Probability maps keyed by ``SliceStack.key``.
    truth_stacks : list of SliceStack
        Labelled stacks (validation cases); every key must be in ``proba_by_key``.
    grid : sequence of float
        Threshold candidates (default 0.05, 0.10, ..., 0.95).
    min_sizes : sequence of int, default (0,)
        Minimum 2D component sizes to try (pixels).
    conventions : MetricConventions
    hausdorff_max_side : int or None, default 128
        Hausdorff distances use volumes max-pooled in-plane so that no side exceeds
        this (None: full resolution, exact but slower).

    Returns
    -------
    ThresholdTuning

    Raises
    ------
    ValueError
        No stacks, unlabelled stacks, missing or mis-shaped maps, an empty grid.
    """
    if not truth_stacks:
        raise ValueError("truth_stacks must hold at least one labelled SliceStack")
    classes = truth_stacks[0].classes
    for stack in truth_stacks:
        if stack.masks is None:
            raise ValueError(f"truth stack {stack.key!r} has no masks")
        if stack.classes != classes:
            raise ValueError(f"truth stack {stack.key!r} classes {stack.classes} != {classes}")
        if stack.key not in proba_by_key:
            raise ValueError(f"proba_by_key has no map for stack {stack.key!r}")
    side = max(max(s.masks.shape[1:3]) for s in truth_stacks)
    factor = hausdorff_pool_factor(side, hausdorff_max_side)
    stats = pd.concat([sweep_statistics(proba_by_key[s.key], s, grid=grid, min_sizes=min_sizes,
                                        conventions=conventions, pool_factor=factor)
                       for s in truth_stacks], ignore_index=True)
    return tuning_from_statistics(stats, classes, keys=[s.key for s in truth_stacks],
                                  pool_factor=factor)
