"""Block labels read at the centres: multilabel, and multi-class by the dominant class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from gitract.blocks._validation import _check_mask, check_centres
from gitract.constants import CLASSES, DOMINANT_PRIORITY

__all__ = ["block_labels", "dominant_label_map", "dominant_labels"]


def block_labels(
    mask: NDArray[np.bool_], rows: NDArray[np.integer], cols: NDArray[np.integer]
) -> NDArray[np.bool_]:
    """Multilabel block labels: the mask at each block centre.

    Parameters
    ----------
    mask : ndarray of shape (H, W, C), dtype bool
        One channel per class (channels may overlap).
    rows, cols : ndarray of shape (n,), int

    Returns
    -------
    labels : ndarray of shape (n, C), dtype bool

    Examples
    --------
    >>> mask = np.zeros((4, 4, 2), bool); mask[1, 2, 1] = True
    >>> block_labels(mask, np.array([1, 0]), np.array([2, 0])).tolist()
    [[False, True], [False, False]]
    """
    mask = _check_mask(mask)
    rows, cols = check_centres(rows, cols, mask.shape[:2])
    return mask[rows, cols]


def _priority_order(classes: Sequence[str], priority: Sequence[str]) -> list[int]:
    """Channel indices in priority order; classes absent from ``priority`` come last."""
    classes = list(classes)
    order = [classes.index(name) for name in priority if name in classes]
    return order + [k for k in range(len(classes)) if k not in order]


def dominant_label_map(
    mask: NDArray[np.bool_],
    *,
    classes: Sequence[str] = CLASSES,
    priority: Sequence[str] = DOMINANT_PRIORITY,
) -> NDArray[np.int64]:
    """Per-pixel dominant class (see :func:`dominant_labels`) of a whole mask.

    Returns
    -------
    labels : ndarray of shape (H, W), dtype int64
        0 = background, ``k`` = ``classes[k - 1]``.
    """
    mask = _check_mask(mask)
    if mask.shape[2] != len(classes):
        raise ValueError(f"mask has {mask.shape[2]} channels but classes has {len(classes)}: {classes!r}")
    labels = np.zeros(mask.shape[:2], dtype=np.int64)
    # Lowest priority first so that higher-priority classes overwrite it.
    for k in reversed(_priority_order(classes, priority)):
        labels[mask[..., k]] = k + 1
    return labels


def dominant_labels(
    mask: NDArray[np.bool_],
    rows: NDArray[np.integer],
    cols: NDArray[np.integer],
    *,
    classes: Sequence[str] = CLASSES,
    priority: Sequence[str] = DOMINANT_PRIORITY,
) -> NDArray[np.int64]:
    """Multi-class block labels by the dominant-class rule.

    The label of a block is the first class of ``priority`` (default
    ``constants.DOMINANT_PRIORITY`` = stomach, small bowel, large bowel) present at the
    block centre, or 0 (background) when none is; class ``classes[k - 1]`` gets ``k``.

    Parameters
    ----------
    mask : ndarray of shape (H, W, C), dtype bool
        Channels ordered like ``classes`` (default ``constants.CLASSES``).
    rows, cols : ndarray of shape (n,), int

    Returns
    -------
    y : ndarray of shape (n,), dtype int64, values in 0..C

    Examples
    --------
    >>> mask = np.zeros((2, 2, 3), bool)
    >>> mask[0, 0] = [True, False, True]   # large bowel and stomach overlap
    >>> mask[0, 1] = [True, False, False]
    >>> dominant_labels(mask, np.array([0, 0, 1]), np.array([0, 1, 1])).tolist()
    [3, 1, 0]
    """
    mask = _check_mask(mask)
    if mask.shape[2] != len(classes):
        raise ValueError(f"mask has {mask.shape[2]} channels but classes has {len(classes)}: {classes!r}")
    rows, cols = check_centres(rows, cols, mask.shape[:2])
    at = mask[rows, cols]
    y = np.zeros(len(rows), dtype=np.int64)
    for k in reversed(_priority_order(classes, priority)):
        y[at[:, k]] = k + 1
    return y
