"""What a featurizer may know about a slice beyond its pixels (:class:`SliceContext`).

The pixel spacing (filter scales in mm become pixels per slice), the neighbouring slices
at their true slice numbers (2.5D features) and the slice's place in its stack.
:func:`slice_context` builds it from a normalised volume and its slice numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["SliceContext", "slice_context"]


@dataclass(frozen=True)
class SliceContext:
    """A slice's spacing, neighbours and position.

    Attributes
    ----------
    spacing : (float, float)
        Pixel spacing in mm along rows and columns.
    above, below : ndarray (H, W) float32 or None
        The nearest slices with a higher / lower slice number within ``max_gap`` slice
        numbers (None: no such slice in the stack, e.g. sparse real stacks).
    gap_above, gap_below : int
        Their distances in slice numbers (0 when missing).
    slice_number : int
        The slice's true number in its scan.
    relative_position : float
        ``(number - first) / (last - first)`` over the stack's slice numbers (0.5 for a
        stack of one slice).
    """

    spacing: tuple[float, float] = (1.0, 1.0)
    above: NDArray[np.float32] | None = None
    below: NDArray[np.float32] | None = None
    gap_above: int = 0
    gap_below: int = 0
    slice_number: int = 0
    relative_position: float = 0.5


def slice_context(
    volume: NDArray[np.float32],
    slice_numbers: Sequence[int],
    s: int,
    spacing: tuple[float, float],
    *,
    max_gap: int = 2,
) -> SliceContext:
    """The :class:`SliceContext` of slice ``s`` of ``volume`` (S, H, W).

    Neighbours are looked up by TRUE slice number, not by position in the stack: in a
    sparse stack (slices 39, 56, 101) slice 56 has no neighbour within ``max_gap``.

    Examples
    --------
    >>> v = np.arange(3, dtype=np.float32)[:, None, None] * np.ones((3, 2, 2), np.float32)
    >>> c = slice_context(v, [10, 11, 20], 1, (1.0, 1.0))
    >>> float(c.below[0, 0]), c.above is None, c.gap_below
    (0.0, True, 1)
    """
    numbers = np.asarray(slice_numbers, dtype=np.int64)
    if len(numbers) != len(volume):
        raise ValueError(f"{len(numbers)} slice numbers for {len(volume)} slices")
    here = int(numbers[s])
    up = np.flatnonzero((numbers > here) & (numbers <= here + max_gap))
    down = np.flatnonzero((numbers < here) & (numbers >= here - max_gap))
    i_up = int(up[np.argmin(numbers[up])]) if up.size else None
    i_down = int(down[np.argmax(numbers[down])]) if down.size else None
    first, last = int(numbers.min()), int(numbers.max())
    return SliceContext(
        spacing=(float(spacing[0]), float(spacing[1])),
        above=None if i_up is None else volume[i_up],
        below=None if i_down is None else volume[i_down],
        gap_above=0 if i_up is None else int(numbers[i_up]) - here,
        gap_below=0 if i_down is None else here - int(numbers[i_down]),
        slice_number=here,
        relative_position=0.5 if last == first else (here - first) / (last - first),
    )
