"""Per-track analyses beyond the competition metric: calibration, block confusion,
empty-slice behaviour and organ localisation. Pure functions over stacks and masks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from gitract.constants import DOMINANT_PRIORITY
from gitract.data.record import SliceStack
from gitract.metrics import centroid_distance_mm


def mean_or_nan(values) -> float:
    vals = np.asarray(list(values), dtype=float)
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if vals.size else math.nan


def calibration(
    stacks: Sequence[SliceStack], proba: Mapping[str, NDArray], *, n_bins: int = 10
) -> pd.DataFrame:
    """Reliability table per class over every test pixel: ``class, bin, mean_proba,
    frac_pos, count``."""
    from gitract.plots import reliability_table

    rows = []
    for c, cls in enumerate(stacks[0].classes):
        p = np.concatenate([proba[s.key][..., c].ravel() for s in stacks])
        t = np.concatenate([s.masks[..., c].ravel() for s in stacks])
        table = reliability_table(np.clip(p, 0, 1), t, n_bins=n_bins)
        rows.append(table.assign(**{"class": cls}))
    return pd.concat(rows, ignore_index=True)


def _dominant(masks: NDArray[np.bool_], classes: Sequence[str]) -> NDArray[np.int64]:
    """(..., C) bool -> (...) int label: 0 background, k = classes[k-1], by priority."""
    label = np.zeros(masks.shape[:-1], dtype=np.int64)
    for name in reversed(DOMINANT_PRIORITY):
        if name in classes:
            k = classes.index(name)
            label[masks[..., k]] = k + 1
    return label


def block_confusion(
    stacks: Sequence[SliceStack], masks: Mapping[str, NDArray[np.bool_]], *, step: int = 8
) -> pd.DataFrame:
    """Block-classification confusion counts at block centres on a ``step`` grid.

    Each block's true label is the dominant class at its centre (priority
    ``constants.DOMINANT_PRIORITY``), its predicted label the dominant class of the
    thresholded masks there, so every track (block classifiers and U-Net) is read the
    same way. Long format: ``true, predicted, count``.
    """
    classes = list(stacks[0].classes)
    n = len(classes) + 1
    cm = np.zeros((n, n), dtype=np.int64)
    for stack in stacks:
        truth = _dominant(stack.masks[:, ::step, ::step], classes).ravel()
        pred = _dominant(masks[stack.key][:, ::step, ::step], classes).ravel()
        cm += np.bincount(truth * n + pred, minlength=n * n).reshape(n, n)
    labels = ["background", *classes]
    return pd.DataFrame(
        [{"true": labels[i], "predicted": labels[j], "count": int(cm[i, j])}
         for i in range(n) for j in range(n)]
    )


def empty_slice_behaviour(
    stacks: Sequence[SliceStack], masks: Mapping[str, NDArray[np.bool_]]
) -> pd.DataFrame:
    """False positives on empty slices: per class (and ``any``), the number of slices where
    the truth is empty and how many of them get a non-empty prediction."""
    classes = list(stacks[0].classes)
    rows = []
    for c, cls in enumerate([*classes, "any"]):
        n_empty = n_fp = fp_pixels = 0
        for stack in stacks:
            if cls == "any":
                t = stack.masks.any(axis=(1, 2, 3))
                p = masks[stack.key].any(axis=-1)
            else:
                t = stack.masks[..., c].any(axis=(1, 2))
                p = masks[stack.key][..., c]
            empty = ~t
            n_empty += int(empty.sum())
            if not empty.any():
                continue
            hit = p[empty].any(axis=tuple(range(1, p.ndim)))
            n_fp += int(hit.sum())
            fp_pixels += int(p[empty].sum())
        rows.append({"class": cls, "n_empty_slices": n_empty, "n_false_positive": n_fp,
                     "fp_rate": n_fp / n_empty if n_empty else math.nan,
                     "fp_pixels": fp_pixels})
    return pd.DataFrame(rows)


def empty_fp_rate(empty: pd.DataFrame) -> float:
    """Share of organ-free slices with any predicted organ."""
    row = empty[empty["class"] == "any"]
    return float(row["fp_rate"].iloc[0]) if len(row) else math.nan


def localisation_errors(
    stacks: Sequence[SliceStack], masks: Mapping[str, NDArray[np.bool_]]
) -> pd.DataFrame:
    """Distance in mm between predicted and true organ centroids, per (slice, class) where
    both are non-empty (as the block-approach seed localised organs)."""
    rows = []
    for stack in stacks:
        pred = masks[stack.key]
        for c, cls in enumerate(stack.classes):
            for s in range(stack.n_slices):
                t, p = stack.masks[s, ..., c], pred[s, ..., c]
                if t.any() and p.any():
                    rows.append({"id": stack.ids[s], "class": cls,
                                 "distance_mm": centroid_distance_mm(p, t, stack.spacing)})
    return pd.DataFrame(rows, columns=["id", "class", "distance_mm"])
