"""Auto-context (Tu and Bai, 2010): later stages read the previous stage's maps.

A stage-k classifier sees the block features plus :func:`context_columns` of the
stage-(k-1) probability map of the same slice: each organ's map smoothed at a few scales
in mm and read at the block centre, and the mid-scale map read on the 3x3 grid of
block-sized offsets around it. The maps of TRAINING cases come from cross-fitting over
the training cases (:func:`crossfit_groups`: a case's maps come from models fitted
without it); validation and test maps from the stage models fitted on all training
cases. Everything is per slice: one slice's map is made, read and dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

__all__ = ["context_columns", "context_column_names", "crossfit_groups"]

_OFFSETS = [(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)]


def context_column_names(classes: Sequence[str], scales_mm: Sequence[float],
                         stage: int) -> list[str]:
    """Names of :func:`context_columns` for a stage (``ac{stage-1}_…``)."""
    tag = f"ac{stage - 1}"
    names = [f"{tag}_{c}_s{s:g}mm" for c in classes for s in scales_mm]
    mid = float(sorted(scales_mm)[len(scales_mm) // 2])
    return names + [f"{tag}_{c}_s{mid:g}mm_at_{i:+d}_{j:+d}" for c in classes for i, j in _OFFSETS]


def context_columns(
    proba: NDArray[np.float32],
    rows: NDArray[np.intp],
    cols: NDArray[np.intp],
    *,
    spacing: tuple[float, float],
    scales_mm: Sequence[float],
    block_size: int,
) -> NDArray[np.float32]:
    """Columns of the previous stage's map ``proba`` (H, W, C) at the centres.

    Per class: the map smoothed at each scale (mm -> px by ``spacing``) at the centre,
    then the map at the middle scale at the eight block-sized offsets (clipped to the
    image).
    """
    height, width, n_classes = proba.shape
    scales = sorted(float(s) for s in scales_mm)
    mid = scales[len(scales) // 2]
    out = []
    grid = []
    for c in range(n_classes):
        for s in scales:
            smooth = ndi.gaussian_filter(proba[..., c], (s / spacing[0], s / spacing[1]),
                                         truncate=3.0, mode="nearest")
            out.append(smooth[rows, cols])
            if s == mid:
                grid += [smooth[np.clip(rows + i * block_size, 0, height - 1),
                                np.clip(cols + j * block_size, 0, width - 1)]
                         for i, j in _OFFSETS]
    return np.stack(out + grid, axis=1).astype(np.float32, copy=False)


def crossfit_groups(cases: Sequence[str], n_groups: int, seed: int) -> list[int]:
    """A group per case (seeded, balanced): stage models for group g fit on the other
    groups' cases and make the maps of g's cases.

    Examples
    --------
    >>> g = crossfit_groups(["a", "b", "c", "a"], 2, 0)
    >>> g[0] == g[3], sorted(set(g))
    (True, [0, 1])
    """
    unique = sorted(set(cases))
    if len(unique) < 2:
        raise ValueError(f"auto-context cross-fitting needs at least 2 training cases, "
                         f"got {len(unique)}")
    order = np.random.default_rng(seed).permutation(len(unique))
    n = min(int(n_groups), len(unique))
    group_of = {unique[i]: k % n for k, i in enumerate(order)}
    return [group_of[c] for c in cases]
