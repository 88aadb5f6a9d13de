"""Blocks: square windows of a slice, each classified by its centre pixel.

A block of odd size ``block_size`` centred at ``(r, c)`` covers rows
``r - block_size // 2 .. r + block_size // 2`` (same for columns). Blocks that reach past
the border read a reflect-padded image (numpy ``mode="reflect"``: the edge pixel is not
repeated; ``scipy.ndimage`` calls this ``"mirror"``, torch ``"reflect"``), so a block
exists at every pixel of the slice.

Centre coordinates are int arrays (``rows``, ``cols``); labels are read at the centre.

Submodules: ``_validation`` (checks), ``_grid`` (grids and extraction), ``_labels``
(labels at the centres) and ``_sampling`` (class-balanced centres). Private helpers are
re-exported here for code that imports them from this module.
"""

from __future__ import annotations

from gitract.blocks._grid import (  # noqa: F401
    _axis_centres,
    _padded_windows,
    block_grid,
    block_view,
    extract_blocks,
    grid_centres,
)
from gitract.blocks._labels import (  # noqa: F401
    _priority_order,
    block_labels,
    dominant_label_map,
    dominant_labels,
)
from gitract.blocks._sampling import _choose, sample_block_centres  # noqa: F401
from gitract.blocks._validation import (  # noqa: F401
    BLOCK_SIZES,
    _check_mask,
    _check_positive_int,
    _check_shape,
    check_block_size,
    check_centres,
    check_image,
)

__all__ = [
    "BLOCK_SIZES",
    "block_grid",
    "block_labels",
    "block_view",
    "check_block_size",
    "check_centres",
    "check_image",
    "dominant_label_map",
    "dominant_labels",
    "extract_blocks",
    "grid_centres",
    "sample_block_centres",
]
