"""Class-balanced, seeded sampling of block centres from one slice."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from gitract.blocks._labels import dominant_label_map
from gitract.blocks._validation import (
    _check_mask,
    _check_positive_int,
    check_block_size,
)
from gitract.constants import CLASSES
from gitract.utils import check_random_state

__all__ = ["sample_block_centres"]


def _choose(candidates: NDArray[np.intp], n: int, gen: np.random.Generator) -> NDArray[np.intp]:
    n = min(int(n), candidates.size)
    if n <= 0:
        return candidates[:0]
    return gen.choice(candidates, size=n, replace=False)


def sample_block_centres(
    mask: NDArray[np.bool_],
    *,
    n_per_class: int,
    background_cap: int | None = None,
    border_fraction: float = 0.5,
    border_width: int | None = None,
    body_mask: NDArray[np.bool_] | None = None,
    block_size: int | None = None,
    random_state: int | np.random.Generator | None = None,
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Class-balanced, seeded sample of block centres from one slice.

    Every mask channel is a class; its candidates are the pixels whose dominant label
    (:func:`dominant_label_map`, ``constants.DOMINANT_PRIORITY`` when the channels are
    ``constants.CLASSES``, else channel order) is that class, so the classes do not
    share centres. Each class gives ``min(n_per_class, available)`` centres. Background
    gives ``min(background_cap, available)``, of which a fraction ``border_fraction``
    comes from the ring of background within ``border_width`` pixels of any organ (the
    hard cases: the block overlaps an organ but its centre does not) and the rest from
    the other background (inside ``body_mask`` when given: air outside the body is an
    easy negative). When one background pool runs short the other fills in.

    Parameters
    ----------
    mask : ndarray of shape (H, W, C), dtype bool
    n_per_class : int
        Centres per organ class (fewer when the class has fewer pixels).
    background_cap : int, optional
        Background centres; default ``n_per_class``.
    border_fraction : float in [0, 1], default 0.5
        Share of the background drawn from the ring around the organs.
    border_width : int, optional
        Ring width in pixels; default ``block_size // 2`` when ``block_size`` is given,
        else 16.
    body_mask : ndarray of shape (H, W), dtype bool, optional
        Restricts the background outside the ring.
    block_size : int, optional
        Only used for the default ``border_width``.
    random_state : int, Generator or None

    Returns
    -------
    rows, cols : ndarray of shape (n,), dtype intp
        Distinct centres in row-major order.

    Examples
    --------
    >>> mask = np.zeros((20, 20, 1), bool); mask[5:10, 5:10, 0] = True
    >>> rows, cols = sample_block_centres(mask, n_per_class=4, background_cap=6,
    ...                                   border_width=3, random_state=0)
    >>> len(rows), int(mask[rows, cols, 0].sum())
    (10, 4)
    """
    mask = _check_mask(mask)
    height, width, n_classes = mask.shape
    n_per_class = _check_positive_int(n_per_class, "n_per_class")
    if background_cap is None:
        background_cap = n_per_class
    if (
        isinstance(background_cap, (bool, np.bool_))
        or not isinstance(background_cap, (int, np.integer))
        or background_cap < 0
    ):
        raise ValueError(
            f"background_cap must be a non-negative int or None, got {background_cap!r}"
        )
    if not 0.0 <= float(border_fraction) <= 1.0:
        raise ValueError(f"border_fraction must be in [0, 1], got {border_fraction!r}")
    if border_width is None:
        border_width = check_block_size(block_size) // 2 if block_size is not None else 16
    border_width = _check_positive_int(border_width, "border_width")
    if body_mask is not None:
        body_mask = np.asarray(body_mask, dtype=bool)
        if body_mask.shape != (height, width):
            raise ValueError(f"body_mask must have shape {(height, width)}, got {body_mask.shape}")
    gen = check_random_state(random_state)

    classes = CLASSES if n_classes == len(CLASSES) else tuple(f"class{k}" for k in range(n_classes))
    labels = dominant_label_map(mask, classes=classes).ravel()
    chosen = [_choose(np.flatnonzero(labels == k), n_per_class, gen) for k in range(1, n_classes + 1)]

    organ = labels.reshape(height, width) > 0
    background = ~organ
    if organ.any():
        ring = background & (ndi.distance_transform_edt(background) <= border_width)
    else:
        ring = np.zeros_like(organ)
    other = background & ~ring
    if body_mask is not None:
        other &= body_mask
    ring_idx, other_idx = np.flatnonzero(ring), np.flatnonzero(other)
    n_ring = min(int(round(border_fraction * background_cap)), ring_idx.size)
    n_other = min(background_cap - n_ring, other_idx.size)
    n_ring = min(background_cap - n_other, ring_idx.size)  # ring fills in for a short "other"
    chosen += [_choose(ring_idx, n_ring, gen), _choose(other_idx, n_other, gen)]

    flat = np.sort(np.concatenate(chosen)).astype(np.intp)
    rows, cols = np.divmod(flat, width)
    return rows.astype(np.intp), cols.astype(np.intp)
