"""Validation of block sizes, shapes, images, masks and centres."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["BLOCK_SIZES", "check_block_size", "check_centres", "check_image"]

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


def check_image(image) -> NDArray:
    """``image`` as an array of shape (H, W), any dtype (not copied).

    Raises
    ------
    ValueError
        If ``image`` is not 2-D.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must have shape (H, W), got shape {image.shape}")
    return image


def _check_mask(mask) -> NDArray[np.bool_]:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"mask must have shape (H, W, C), got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def check_centres(rows, cols, shape: tuple[int, int]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Block centres ``(rows, cols)`` as 1-D intp arrays inside an image of ``shape``.

    Raises
    ------
    ValueError
        If the arrays are not 1-D of equal length, not ints, or reach outside ``shape``.
    """
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
