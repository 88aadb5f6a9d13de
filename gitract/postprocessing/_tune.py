"""Choosing the volume steps (:mod:`._volume`) per class on validation scans, as sums.

Like the threshold sweep, each validation scan yields a small table of sums per
candidate (``dice_sum, dice_n, hd_sum, hd_n``), so only one scan's maps are held at a
time; summing the tables over scans and choosing with :func:`postprocess_from_statistics`
gives the per-class choice. The candidates are scored on the masks the tuned thresholds
give, so the steps are tuned after (and together with) the thresholds, on the same
validation scans. The z-range comes from the *training* scans' masks
(:func:`class_positions`, combined by :func:`combine_positions`), never from test scans.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from gitract.data.record import SliceStack
from gitract.metrics import DICE_WEIGHT, HAUSDORFF_WEIGHT, MetricConventions, hausdorff_3d
from gitract.postprocessing._thresholds import _pool
from gitract.postprocessing._volume import (
    ClassPostprocess,
    PostprocessChoice,
    component_sizes_3d,
    relative_positions,
    slice_evidence,
    slice_keep,
)

__all__ = ["STEP_COLUMNS", "chosen_thresholds", "shift_threshold", "class_positions", "combine_positions",
           "postprocess_from_statistics", "postprocess_statistics"]

#: The candidate columns of a statistics table (one value each per row).
STEP_COLUMNS = ["threshold_shift", "gate_cut", "gate_area", "z_margin", "component_fraction"]
_SUMS = ["dice_sum", "dice_n", "hd_sum", "hd_n"]


def class_positions(stack: SliceStack) -> dict[str, tuple[float, float] | None]:
    """Per class, the lowest and highest relative slice position (see
    :func:`~gitract.postprocessing._volume.relative_positions`) where the class occurs in
    one labelled training stack; None where it does not occur or positions are undefined."""
    positions = relative_positions(stack.slice_numbers, stack.n_slices)
    out: dict[str, tuple[float, float] | None] = {}
    for k, name in enumerate(stack.classes):
        present = stack.masks[..., k].reshape(stack.n_slices, -1).any(axis=1)
        out[name] = None if positions is None or not present.any() else (
            float(positions[present].min()), float(positions[present].max()))
    return out


def combine_positions(parts: Sequence[Mapping[str, tuple[float, float] | None]],
                      classes: Sequence[str]) -> dict[str, tuple[float, float] | None]:
    """The per-class range over every training stack (the union of their ranges)."""
    out = {}
    for name in classes:
        seen = [p[name] for p in parts if p.get(name) is not None]
        out[name] = (min(s[0] for s in seen), max(s[1] for s in seen)) if seen else None
    return out


def postprocess_statistics(proba: np.ndarray, masks: np.ndarray, stack: SliceStack, *,
                           candidates: Mapping[str, Sequence[float]],
                           z_ranges: Mapping[str, tuple[float, float] | None],
                           conventions: MetricConventions, pool_factor: int = 1,
                           threshold_shift: float = 0.0) -> pd.DataFrame:
    """Sums for every candidate combination on one validation scan.

    Parameters
    ----------
    proba, masks : ndarray of shape (S, H, W, C)
        The scan's probabilities and its masks after the tuned thresholds.
    stack : SliceStack
        The labelled scan (truth, slice numbers).
    candidates : mapping
        A list of values per name of :data:`STEP_COLUMNS` (each holding the neutral one).
    z_ranges : mapping of class to (low, high) or None
        From the training scans.
    threshold_shift : float
        How far ``masks``' thresholds lie from the tuned ones (a label of the rows: with
        the volume steps cleaning strays, a lower threshold may now score better).

    Returns
    -------
    DataFrame
        ``class, threshold_shift, gate_cut, gate_area, z_margin, component_fraction,
        dice_sum, dice_n, hd_sum, hd_n``.
    """
    if stack.masks is None:
        raise ValueError(f"truth stack {stack.key!r} has no masks")
    positions = relative_positions(stack.slice_numbers, stack.n_slices)
    rows = []
    for k, name in enumerate(stack.classes):
        truth = np.ascontiguousarray(stack.masks[..., k])
        p, m = proba[..., k], np.ascontiguousarray(masks[..., k])
        n = len(truth)
        truth_count = np.count_nonzero(truth.reshape(n, -1), axis=1)
        pooled_truth = _pool(truth, pool_factor)
        evidence = slice_evidence(p, m)
        hd_memo: dict[bytes, float] = {}
        by_keep: dict[bytes, dict] = {}
        for cut, area, margin in itertools.product(candidates["gate_cut"],
                                                   candidates["gate_area"],
                                                   candidates["z_margin"]):
            keep = slice_keep(evidence, positions, gate_cut=cut, gate_area=area,
                              z_margin=margin, z_range=z_ranges.get(name))
            digest = keep.tobytes()
            if digest not in by_keep:
                kept = m & keep[:, None, None]
                sizes = component_sizes_3d(kept, stack.slice_numbers)
                # Max-pooled sizes: pooling (sizes >= c) is (pooled sizes >= c), so the
                # pooling runs once per set of kept slices.
                pooled_sizes = _pool(sizes, pool_factor)
                by_keep[digest] = {}
                for fraction in candidates["component_fraction"]:
                    cut_size = max(fraction * sizes.max(), 1) if fraction > 0 else 1
                    by_keep[digest][fraction] = _sums(
                        sizes >= cut_size, pooled_sizes >= cut_size, truth, truth_count,
                        pooled_truth, conventions, hd_memo)
            for fraction, sums in by_keep[digest].items():
                rows.append((name, float(threshold_shift), float(cut), float(area),
                             float(margin), float(fraction), *sums))
    return pd.DataFrame(rows, columns=["class", *STEP_COLUMNS, *_SUMS])


def _sums(pred, pooled, truth, truth_count, pooled_truth, conventions, memo):
    n = len(truth)
    inter = np.count_nonzero((pred & truth).reshape(n, -1), axis=1)
    total = np.count_nonzero(pred.reshape(n, -1), axis=1) + truth_count
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(total > 0, 2.0 * inter / np.maximum(total, 1), conventions.dice_both_empty)
    finite = ~np.isnan(d)
    digest = hashlib.sha1(np.packbits(pooled).tobytes()).digest()
    if digest not in memo:
        memo[digest] = hausdorff_3d(pooled, pooled_truth,
                                    empty_score=conventions.hausdorff_both_empty)
    hd = memo[digest]
    return (float(d[finite].sum()), int(finite.sum()),
            0.0 if math.isnan(hd) else float(hd), 0 if math.isnan(hd) else 1)


def _n_fitted(row) -> int:
    """Active steps whose value is fitted to validation (the gate, the components)."""
    return int(row["gate_cut"] > 0) + int(row["gate_area"] > 0) + int(
        row["component_fraction"] > 0)


def postprocess_from_statistics(stats: pd.DataFrame, classes: Sequence[str],
                                z_ranges: Mapping[str, tuple[float, float] | None]
                                ) -> tuple[PostprocessChoice, pd.DataFrame]:
    """Per class the candidate with the best summed validation score (a NaN score, every
    volume both-empty, ranks as 1); ties go to the fewest gate and component steps and the
    unshifted threshold, then
    to the z-range on with the widest margin (its range comes from the training cases, so
    where validation cannot tell, the training prior decides), then the mildest values.
    Returns the choice and the table of every candidate's ``dice, hausdorff, score`` (with
    ``chosen`` marked)."""
    total = stats.groupby(["class", *STEP_COLUMNS], sort=False)[_SUMS].sum().reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        total["dice"] = total["dice_sum"] / total["dice_n"].where(total["dice_n"] > 0)
        total["hausdorff"] = total["hd_sum"] / total["hd_n"].where(total["hd_n"] > 0)
    total["score"] = DICE_WEIGHT * total["dice"] + HAUSDORFF_WEIGHT * (1.0 - total["hausdorff"])
    total["chosen"] = False
    steps = []
    for name in classes:
        part = total[total["class"] == name]
        if not len(part):
            steps.append(ClassPostprocess(z_range=z_ranges.get(name)))
            continue
        rank = part.assign(_s=part["score"].fillna(1.0), _a=part.apply(_n_fitted, axis=1),
                           _t=-part["threshold_shift"], _z=~np.isfinite(part["z_margin"]),
                           _m=-part["z_margin"].where(np.isfinite(part["z_margin"]), 0.0))
        best = rank["_s"].max()
        tied = rank[rank["_s"] >= best - 1e-12].sort_values(
            ["_a", "_t", "_z", "_m", "gate_cut", "gate_area", "component_fraction"],
            kind="stable")
        row = tied.iloc[0]
        total.loc[tied.index[0], "chosen"] = True
        steps.append(ClassPostprocess(float(row["gate_cut"]), float(row["gate_area"]),
                                      float(row["z_margin"]), float(row["component_fraction"]),
                                      z_ranges.get(name)))
    table = total.drop(columns=_SUMS)
    return PostprocessChoice(tuple(classes), tuple(steps)), table


def chosen_thresholds(table: pd.DataFrame, thresholds: Sequence[float],
                      classes: Sequence[str]) -> tuple[float, ...]:
    """The tuned thresholds moved by each class's chosen ``threshold_shift`` (from the
    table of :func:`postprocess_from_statistics`; unchanged where none was chosen)."""
    chosen = table[table["chosen"]].set_index("class")["threshold_shift"] if len(table) \
        else pd.Series(dtype=float)
    return tuple(shift_threshold(t, float(chosen.get(c, 0.0)))
                 for t, c in zip(thresholds, classes, strict=True))


def shift_threshold(threshold: float, shift: float) -> float:
    """``threshold + shift``, kept at or above 0.05 (the sweep's lowest; a threshold
    already lower stays where it is) and at most 0.95."""
    return round(min(max(float(threshold) + shift, min(float(threshold), 0.05)), 0.95), 10)
