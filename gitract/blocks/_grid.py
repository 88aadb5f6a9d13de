"""Regular grids of block centres and the blocks around centres (reflect-padded)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from gitract.blocks._validation import (
    _check_positive_int,
    _check_shape,
    check_block_size,
    check_centres,
    check_image,
)

__all__ = ["block_grid", "block_view", "extract_blocks", "grid_centres"]


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
    image = check_image(image)
    rows, cols = check_centres(rows, cols, image.shape)
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
    image = check_image(image)
    return _padded_windows(image, block_size)[::step, ::step]
