"""Blocks: square windows of a slice, each classified by its centre pixel.

A block of odd size ``block_size`` centred at ``(r, c)`` covers rows
``r - block_size // 2 .. r + block_size // 2`` (same for columns). Blocks that reach past
the border read a reflect-padded image (numpy ``mode="reflect"``: the edge pixel is not
repeated; ``scipy.ndimage`` calls this ``"mirror"``, torch ``"reflect"``), so a block
exists at every pixel of the slice.

Centre coordinates are int arrays (``rows``, ``cols``); labels are read at the centre.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy import ndimage as ndi

from gitract.constants import CLASSES, DOMINANT_PRIORITY
from gitract.utils._random import check_random_state

__all__ = [
    "BLOCK_SIZES",
    "block_grid",
    "block_labels",
    "block_view",
    "check_block_size",
    "dominant_label_map",
    "dominant_labels",
    "extract_blocks",
    "grid_centres",
    "sample_block_centres",
]

#: The block sizes of the seed project (any positive odd size works).
BLOCK_SIZES: tuple[int, ...] = (33, 63)


def check_block_size(block_size: int) -> int:
    """Return ``block_size`` as an int, or raise if it is not a positive odd int.

    Examples
    --------
    >>> check_block_size(33)
    33
    """
    if (
        isinstance(block_size, (bool, np.bool_))
        or not isinstance(block_size, (int, np.integer))
        or block_size < 1
        or block_size % 2 == 0
    ):
        raise ValueError(f"block_size must be a positive odd int, got {block_size!r}")
    return int(block_size)


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_shape(shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2 or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"shape must start with two positive sizes (H, W), got {shape!r}")
    return shape[0], shape[1]


def _check_image(image) -> NDArray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must have shape (H, W), got shape {image.shape}")
    return image


def _check_mask(mask) -> NDArray[np.bool_]:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"mask must have shape (H, W, C), got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def _check_centres(rows, cols, shape: tuple[int, int]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    rows = np.asarray(rows)
    cols = np.asarray(cols)
    if rows.ndim != 1 or rows.shape != cols.shape:
        raise ValueError(
            f"rows and cols must be 1-D arrays of equal length, got shapes {rows.shape} and {cols.shape}"
        )
    is_int = np.issubdtype(rows.dtype, np.integer) and np.issubdtype(cols.dtype, np.integer)
    if rows.size and not is_int:
        raise ValueError(f"rows and cols must be int arrays, got {rows.dtype} and {cols.dtype}")
    rows = rows.astype(np.intp, copy=False)
    cols = cols.astype(np.intp, copy=False)
    if rows.size and (
        rows.min() < 0 or rows.max() >= shape[0] or cols.min() < 0 or cols.max() >= shape[1]
    ):
        raise ValueError(f"rows/cols must lie inside the image of shape {shape}")
    return rows, cols


def _axis_centres(size: int, step: int, offset: int) -> NDArray[np.intp]:
    centres = np.arange(offset, size, step, dtype=np.intp)
    if centres[-1] != size - 1:
        centres = np.append(centres, size - 1)
    return centres


def block_grid(
    shape: Sequence[int], *, step: int, offset: int = 0, block_size: int | None = None
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Centres of a regular block grid along each axis.

    Along rows the centres are ``offset, offset + step, ...`` below ``H`` and then always
    ``H - 1`` (same along columns), so the grid spans the whole slice: interpolating
    a map known at the centres to every pixel never extrapolates. The last gap may be
    shorter than ``step``.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W, ...)`` of the slice (extra trailing sizes are ignored).
    step : int
        Distance between neighbouring centres, >= 1.
    offset : int, default 0
        First centre along each axis, ``0 <= offset < min(H, W)``.
    block_size : int, optional
        Only validated (positive odd); centres do not depend on it because blocks
        near the border read reflect padding.

    Returns
    -------
    rows : ndarray of shape (nr,), dtype intp
    cols : ndarray of shape (nc,), dtype intp

    Raises
    ------
    ValueError
        If ``step``, ``offset`` or ``block_size`` is invalid.

    Examples
    --------
    >>> rows, cols = block_grid((10, 7), step=4)
    >>> rows.tolist(), cols.tolist()
    ([0, 4, 8, 9], [0, 4, 6])
    """
    if block_size is not None:
        check_block_size(block_size)
    height, width = _check_shape(shape)
    step = _check_positive_int(step, "step")
    if isinstance(offset, (bool, np.bool_)) or not isinstance(offset, (int, np.integer)) or not (
        0 <= offset < min(height, width)
    ):
        raise ValueError(f"offset must be an int in [0, {min(height, width)}), got {offset!r}")
    return _axis_centres(height, step, int(offset)), _axis_centres(width, step, int(offset))


def grid_centres(
    shape: Sequence[int], *, step: int, offset: int = 0
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Flattened (row-major) centres of :func:`block_grid`.

    Returns
    -------
    rr, cc : ndarray of shape (nr * nc,), dtype intp
        ``rr.reshape(nr, nc)`` recovers the grid.

    Examples
    --------
    >>> rr, cc = grid_centres((5, 5), step=4)
    >>> rr.tolist(), cc.tolist()
    ([0, 0, 4, 4], [0, 4, 0, 4])
    """
    rows, cols = block_grid(shape, step=step, offset=offset)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return rr.ravel(), cc.ravel()


def _padded_windows(image: NDArray, block_size: int) -> NDArray:
    """``(H, W, bs, bs)`` read-only view: ``[r, c]`` is the block centred at ``(r, c)``."""
    half = block_size // 2
    padded = np.pad(image, half, mode="reflect") if half else image
    return sliding_window_view(padded, (block_size, block_size))


def extract_blocks(
    image: NDArray, rows: NDArray[np.integer], cols: NDArray[np.integer], *, block_size: int
) -> NDArray:
    """Blocks centred at arbitrary pixels, reflect-padded at the border.

    The blocks are gathered by fancy indexing from a zero-copy
    ``sliding_window_view`` of the padded image (one copy of the image, one copy of
    the selected blocks).

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Any dtype (float32 in [0, 1] by convention); the blocks keep it.
    rows, cols : ndarray of shape (n,), int
        Centres, inside the image.
    block_size : int
        Positive odd size of the square blocks.

    Returns
    -------
    blocks : ndarray of shape (n, block_size, block_size), dtype of ``image``

    Raises
    ------
    ValueError
        On a bad ``block_size``, image shape or centres outside the image.

    Examples
    --------
    >>> image = np.arange(25.0).reshape(5, 5)
    >>> extract_blocks(image, np.array([2]), np.array([2]), block_size=3)[0]
    array([[ 6.,  7.,  8.],
           [11., 12., 13.],
           [16., 17., 18.]])
    """
    block_size = check_block_size(block_size)
    image = _check_image(image)
    rows, cols = _check_centres(rows, cols, image.shape)
    return _padded_windows(image, block_size)[rows, cols]


def block_view(image: NDArray, *, block_size: int, step: int = 1) -> NDArray:
    """Zero-copy strided view of the blocks of a dense regular grid.

    The centres are ``range(0, H, step)`` x ``range(0, W, step)`` (a strided view cannot
    append the last index the way :func:`block_grid` does). The view is read-only and
    shares memory with a reflect-padded copy of ``image``.

    Parameters
    ----------
    image : ndarray of shape (H, W)
    block_size : int
        Positive odd size of the blocks.
    step : int, default 1
        Distance between neighbouring centres.

    Returns
    -------
    blocks : ndarray of shape (ceil(H / step), ceil(W / step), block_size, block_size)
        ``blocks[i, j]`` is centred at ``(i * step, j * step)``; dtype of ``image``.

    Examples
    --------
    >>> block_view(np.zeros((10, 7), np.float32), block_size=33, step=4).shape
    (3, 2, 33, 33)
    """
    block_size = check_block_size(block_size)
    step = _check_positive_int(step, "step")
    image = _check_image(image)
    return _padded_windows(image, block_size)[::step, ::step]


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
    rows, cols = _check_centres(rows, cols, mask.shape[:2])
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
    rows, cols = _check_centres(rows, cols, mask.shape[:2])
    at = mask[rows, cols]
    y = np.zeros(len(rows), dtype=np.int64)
    for k in reversed(_priority_order(classes, priority)):
        y[at[:, k]] = k + 1
    return y


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
