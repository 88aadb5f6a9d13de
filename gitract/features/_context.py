"""Where a block lies in the body and what surrounds it, for every pixel as a block centre.

A block of raw pixels does not say where in the body it lies, nor what the block-sized
cells around it hold; the random forest gets both from :class:`FilterFeaturizer`'s
``pos_*`` and ``ctx_*`` features, and on real slices they are what lifts it above the
block CNN (an RF on raw pixels alone scores like the CNN). :func:`context_maps` gives
the same quantities as dense per-pixel maps, so the block CNN can take them into its
head (late fusion) and :class:`RawBlockFeaturizer` can append them to raw pixels.

The values (``context_names``) at a centre (r, c):

- ``pos_row_bbox``, ``pos_col_bbox``: position in the body bounding box, 0 to 1;
- ``pos_row_centroid``, ``pos_col_centroid``: offset from the body centroid in body
  half-extents;
- ``pos_dist_edge``: signed distance to the body edge (> 0 inside) in units of the
  deepest body point;
- ``pos_inside_body``: 1 inside the body, else 0;
- ``ctx_rel_{i}_{j}``: mean of the block-sized cell centred at
  ``(r + (i - g // 2) * bs, c + (j - g // 2) * bs)`` (reflect padding past the edge), as
  ``(mean - body_mean) / body_std``.

The ``pos_*`` values equal :class:`FilterFeaturizer`'s features of the same name; the
cell means are its ``ctx_{i}_{j}`` expressed relative to the body (hence the other
name), which makes them independent of the slice's overall brightness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from gitract.blocks import check_block_size, check_centres, check_image
from gitract.features._body import find_body

__all__ = ["POSITION_NAMES", "ContextPlanes", "context_maps", "context_names",
           "prepare_context"]

#: Names of the body-position values, in order (before the context-grid cells).
POSITION_NAMES: tuple[str, ...] = (
    "pos_row_bbox", "pos_col_bbox", "pos_row_centroid", "pos_col_centroid",
    "pos_dist_edge", "pos_inside_body",
)


def _check_grid(context_grid: int) -> int:
    if (isinstance(context_grid, (bool, np.bool_)) or not isinstance(context_grid, (int, np.integer))
            or context_grid < 1 or context_grid % 2 == 0):
        raise ValueError(f"context_grid must be a positive odd int, got {context_grid!r}")
    return int(context_grid)


def context_names(context_grid: int = 3) -> list[str]:
    """Names of the context values, in the order of :func:`context_maps`' channels.

    Examples
    --------
    >>> len(context_names(3)), context_names(1)[-1]
    (15, 'ctx_rel_0_0')
    """
    g = _check_grid(context_grid)
    return [*POSITION_NAMES, *(f"ctx_rel_{i}_{j}" for i in range(g) for j in range(g))]


@dataclass(frozen=True)
class ContextPlanes:
    """A slice's context, kept as two planes from which any centres' values are read.

    Two planes (signed distance and the padded cell means) instead of the
    ``len(context_names())`` maps of :func:`context_maps`: training on many whole slices
    keeps this per slice (a sixth of the maps' memory with the default grid).
    Build it with :func:`prepare_context`.

    Attributes
    ----------
    shape : (H, W)
    block_size, context_grid : int
    edge : ndarray of shape (H, W), dtype float32
        Signed distance to the body edge in units of the deepest body point.
    cells : ndarray of shape (H + 2 pad, W + 2 pad), dtype float32
        Block-sized means of the reflect-padded slice, relative to the body.
    pad : int
    bbox : (r0, c0, r1, c1)
    centroid : (row, col)
    """

    shape: tuple[int, int]
    block_size: int
    context_grid: int
    edge: NDArray[np.float32]
    cells: NDArray[np.float32]
    pad: int
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]

    @property
    def n_features(self) -> int:
        """Number of context values per centre."""
        return len(POSITION_NAMES) + self.context_grid**2

    @property
    def _offsets(self) -> NDArray[np.intp]:
        g = self.context_grid
        return (np.arange(g, dtype=np.intp) - g // 2) * self.block_size

    def _position(self, rows_f, cols_f, edge) -> list:
        # The same float32 arithmetic as FilterFeaturizer._position (equal values).
        r0, c0, r1, c1 = self.bbox
        half_h = max((r1 - r0) / 2.0, 1.0)
        half_w = max((c1 - c0) / 2.0, 1.0)
        return [
            (rows_f - r0) / max(r1 - r0, 1),
            (cols_f - c0) / max(c1 - c0, 1),
            (rows_f - self.centroid[0]) / half_h,
            (cols_f - self.centroid[1]) / half_w,
            edge,
            (edge > 0).astype(np.float32),
        ]

    def at(self, rows, cols) -> NDArray[np.float32]:
        """Context values of the centres ``rows, cols``.

        Returns
        -------
        ndarray of shape (n, n_features), dtype float32
        """
        rows, cols = check_centres(rows, cols, self.shape)
        parts = self._position(rows.astype(np.float32), cols.astype(np.float32),
                               self.edge[rows, cols])
        off = self._offsets
        rr = rows[:, None, None] + self.pad + off[None, :, None]
        cc = cols[:, None, None] + self.pad + off[None, None, :]
        cells = self.cells[rr, cc].reshape(len(rows), off.size**2)
        return np.concatenate([np.stack(parts, axis=1), cells], axis=1).astype(np.float32, copy=False)

    def window(self, row0: int, col0: int, height: int, width: int) -> NDArray[np.float32]:
        """Context maps of the centres ``[row0, row0 + height) x [col0, col0 + width)``.

        Returns
        -------
        ndarray of shape (n_features, height, width), dtype float32
        """
        h, w = self.shape
        if not (0 <= row0 and 0 <= col0 and height >= 0 and width >= 0
                and row0 + height <= h and col0 + width <= w):
            raise ValueError(f"window rows [{row0}, {row0 + height}) x cols [{col0}, "
                             f"{col0 + width}) must lie inside the slice of shape {self.shape}")
        rows_f = np.arange(row0, row0 + height, dtype=np.float32)[:, None]
        cols_f = np.arange(col0, col0 + width, dtype=np.float32)[None, :]
        edge = self.edge[row0 : row0 + height, col0 : col0 + width]
        out = np.empty((self.n_features, height, width), np.float32)
        for k, part in enumerate(self._position(rows_f, cols_f, edge)):
            out[k] = part
        k = len(POSITION_NAMES)
        for di in self._offsets + self.pad + row0:
            for dj in self._offsets + self.pad + col0:
                out[k] = self.cells[di : di + height, dj : dj + width]
                k += 1
        return out


def prepare_context(
    image: NDArray[np.floating], block_size: int, *, context_grid: int = 3
) -> ContextPlanes:
    """The per-slice work of :func:`context_maps` (body outline, cell means), O(H*W).

    Parameters
    ----------
    image : ndarray of shape (H, W), float32 in [0, 1]
    block_size : int
        Positive odd block size (the side of the context cells and their spacing).
    context_grid : int, default 3
        Odd number of cells along each axis.

    Returns
    -------
    ContextPlanes
    """
    image = check_image(image).astype(np.float32, copy=False)
    bs = check_block_size(block_size)
    g = _check_grid(context_grid)
    body = find_body(image)
    depth = max(float(body.signed_distance.max()), 1.0)
    # FilterFeaturizer's context grid: reflect pad, then a box filter, read at the offsets.
    pad = (g // 2) * bs + bs // 2 + 1
    padded = np.pad(image, pad, mode="reflect")
    cells = (ndi.uniform_filter(padded, bs, mode="mirror") - body.mean) / body.std
    return ContextPlanes(
        shape=(int(image.shape[0]), int(image.shape[1])), block_size=bs, context_grid=g,
        edge=(body.signed_distance / depth).astype(np.float32, copy=False),
        cells=cells.astype(np.float32, copy=False), pad=pad, bbox=body.bbox,
        centroid=body.centroid,
    )


def context_maps(
    image: NDArray[np.floating], block_size: int, *, context_grid: int = 3
) -> NDArray[np.float32]:
    """Body position and surrounding cell means of the block centred at every pixel.

    Parameters
    ----------
    image : ndarray of shape (H, W), float32 in [0, 1]
        A normalised slice.
    block_size : int
        Positive odd block size.
    context_grid : int, default 3
        Odd number of block-sized cells along each axis of the context grid.

    Returns
    -------
    maps : ndarray of shape (K, H, W), dtype float32
        ``K = len(context_names(context_grid))`` channels named by :func:`context_names`
        (see the module notes); ``maps[:, r, c]`` are the values of the block centred
        at ``(r, c)``.

    Examples
    --------
    >>> image = np.zeros((20, 24), np.float32)
    >>> image[4:16, 5:19] = 0.8
    >>> maps = context_maps(image, 5)
    >>> maps.shape, maps.dtype
    ((15, 20, 24), dtype('float32'))
    >>> float(maps[5, 10, 12]), float(maps[5, 0, 0])  # pos_inside_body
    (1.0, 0.0)
    """
    planes = prepare_context(image, block_size, context_grid=context_grid)
    return planes.window(0, 0, *planes.shape)
