"""Run-length encoding of the UW-Madison competition (``start length`` pairs, 1-indexed).

The community's decoding for this competition is row-major (C order) over the slice;
column-major (Fortran order) is available through ``order="F"``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gitract.data.record import DataError


def _check_order(order: str) -> str:
    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' (row-major) or 'F' (column-major), got {order!r}")
    return order


def rle_encode(mask: NDArray, *, order: str = "C") -> str:
    """Encode a 2D boolean mask as ``"start length start length ..."`` (1-indexed starts).

    An empty mask gives the empty string.

    Examples
    --------
    >>> rle_encode(np.array([[0, 1, 1], [1, 0, 0]], dtype=bool))
    '2 3'
    >>> rle_encode(np.zeros((2, 2), dtype=bool))
    ''
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D, got shape {mask.shape}")
    flat = mask.astype(bool).ravel(order=_check_order(order))
    padded = np.concatenate([[False], flat, [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1]) + 1
    starts, ends = changes[0::2], changes[1::2]
    runs = np.empty(2 * len(starts), dtype=np.int64)
    runs[0::2] = starts
    runs[1::2] = ends - starts
    return " ".join(map(str, runs.tolist()))


def _runs(rle: str | float | None, h: int, w: int, where: str
          ) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """0-based run starts and ends of an RLE string, checked; None when it is empty."""
    if rle is None or (isinstance(rle, float) and np.isnan(rle)):
        return None
    text = str(rle).strip()
    if not text:
        return None
    n = h * w
    try:
        nums = np.array(text.split(), dtype=np.int64)
    except ValueError as exc:
        raise DataError(f"{where}: malformed RLE (non-integer token): {exc}") from None
    except OverflowError:
        raise DataError(f"{where}: malformed RLE (a value beyond 64-bit range)") from None
    if nums.size % 2:
        raise DataError(f"{where}: malformed RLE (odd number of values: {nums.size})")
    starts, lengths = nums[0::2] - 1, nums[1::2]
    if (starts < 0).any():
        raise DataError(f"{where}: malformed RLE (start below 1)")
    if (lengths <= 0).any():
        raise DataError(f"{where}: malformed RLE (non-positive run length)")
    ends = starts + lengths
    if ends.max() > n:
        raise DataError(
            f"{where}: RLE out of bounds (run ends at {int(ends.max())} > {n} pixels "
            f"of a {h}x{w} slice)"
        )
    if (starts[1:] < ends[:-1]).any():
        raise DataError(f"{where}: malformed RLE (runs overlap or are not increasing)")
    return starts, ends


def check_rle(rle: str | float | None, shape: tuple[int, int], *, where: str = "rle") -> None:
    """Raise what :func:`rle_decode` would raise for ``rle`` on a slice of ``shape``,
    without building the mask (a cheap check of every row before any work).

    Examples
    --------
    >>> check_rle("2 3", (2, 3))
    >>> check_rle("2 2 7", (2, 3), where="row 7")
    Traceback (most recent call last):
    ...
    gitract.data.record.DataError: row 7: malformed RLE (odd number of values: 3)
    """
    _runs(rle, int(shape[0]), int(shape[1]), where)


def rle_decode(
    rle: str | float | None, shape: tuple[int, int], *, order: str = "C", where: str = "rle"
) -> NDArray[np.bool_]:
    """Decode an RLE string into a boolean mask of ``shape`` (H, W).

    Empty strings, None and NaN (pandas' empty cell) give an empty mask. Malformed or
    out-of-bounds runs raise :class:`DataError` naming ``where`` (e.g. the row id).

    Examples
    --------
    >>> rle_decode("2 3", (2, 3)).astype(int).tolist()
    [[0, 1, 1], [1, 0, 0]]
    """
    h, w = (int(shape[0]), int(shape[1]))
    n = h * w
    flat = np.zeros(n, dtype=bool)
    runs = _runs(rle, h, w, where)
    if runs is not None:
        starts, ends = runs
        delta = np.zeros(n + 1, dtype=np.int32)
        np.add.at(delta, starts, 1)
        np.add.at(delta, ends, -1)
        flat = np.cumsum(delta[:-1]) > 0
    return flat.reshape((h, w), order=_check_order(order))
