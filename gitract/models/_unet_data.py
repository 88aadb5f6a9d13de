"""Numpy side of the 2.5D U-Net track: neighbour stacking, resizing there and back.

No torch here, so that these pure functions can be imported and tested cheaply;
``gitract.models.unet`` re-exports them.

2.5D input
----------
The network sees each slice with neighbours as channels, chosen by slice *number*
(``SliceStack.slice_numbers``), not by position in the array: the derived UW-Madison set
keeps only a few non-contiguous slices per case-day (e.g. slices 39, 56 and 101), and a
Kaggle stack may in principle have gaps. For slice number ``n`` and offset ``o`` the
channel is the available slice whose number is nearest to ``n + o``:

- inside a complete stack this is exactly slice ``n + o``;
- beyond either end of the volume the nearest slice is the edge slice, so the edge slice
  is repeated;
- in a sparse stack, where ``n + o`` is absent, the nearest available slice is used; a
  tie between two equally near slices goes to the one nearer to ``n`` (the centre),
  which avoids reaching further from the slice being segmented. With gaps much wider
  than the offsets this is usually the slice itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from gitract.preprocessing import normalize_intensity, resize_to

__all__ = [
    "check_offsets",
    "network_grid",
    "neighbour_indices",
    "prepare_images",
    "prepare_masks",
    "resize_proba_back",
    "stack_25d",
]


def check_offsets(offsets: Sequence[int]) -> tuple[int, ...]:
    """Validate 2.5D offsets: a non-empty sequence of ints; returns a tuple."""
    if isinstance(offsets, (str, bytes)) or not isinstance(offsets, Sequence) or not offsets:
        raise ValueError(f"offsets must be a non-empty sequence of ints, got {offsets!r}")
    out = []
    for o in offsets:
        if isinstance(o, bool) or not isinstance(o, (int, np.integer)):
            raise ValueError(f"offsets must hold ints, got {offsets!r}")
        out.append(int(o))
    return tuple(out)


def neighbour_indices(
    slice_numbers: Sequence[int], *, offsets: Sequence[int] = (-2, 0, 2)
) -> NDArray[np.intp]:
    """Array positions of each slice's 2.5D neighbours (see the module docstring).

    Parameters
    ----------
    slice_numbers : sequence of int, length S
        Slice number of each slice in the array (distinct; any order).
    offsets : sequence of int, length K
        Slice-number offsets of the channels.

    Returns
    -------
    ndarray of shape (S, K), dtype intp
        ``idx[i, k]``: position of the available slice nearest to
        ``slice_numbers[i] + offsets[k]`` (ties to the one nearer ``slice_numbers[i]``).

    Examples
    --------
    >>> neighbour_indices([0, 1, 2, 3], offsets=(-2, 0, 2)).tolist()
    [[0, 0, 2], [0, 1, 3], [0, 2, 3], [1, 3, 3]]
    >>> neighbour_indices([39, 56, 101], offsets=(-2, 0, 2)).tolist()
    [[0, 0, 0], [1, 1, 1], [2, 2, 2]]
    >>> neighbour_indices([10, 13, 14], offsets=(-2, 0, 2)).tolist()
    [[0, 0, 1], [0, 1, 2], [1, 2, 2]]
    """
    offsets = check_offsets(offsets)
    numbers = np.asarray(slice_numbers, dtype=np.int64)
    if numbers.ndim != 1 or numbers.size == 0:
        raise ValueError(f"slice_numbers must be a non-empty 1D sequence, got {slice_numbers!r}")
    if np.unique(numbers).size != numbers.size:
        raise ValueError(f"slice_numbers must be distinct, got {tuple(numbers.tolist())!r}")
    target = numbers[:, None] + np.asarray(offsets, dtype=np.int64)[None, :]  # (S, K)
    dist = np.abs(target[:, :, None] - numbers[None, None, :])  # (S, K, S)
    # Tie-break: among equally near slices prefer the one nearest the centre slice.
    centre = np.abs(numbers[None, None, :] - numbers[:, None, None])
    key = dist * (int(np.ptp(numbers)) * 2 + 2) + centre
    return np.argmin(key, axis=2).astype(np.intp)


def stack_25d(
    volume: NDArray, slice_numbers: Sequence[int], *, offsets: Sequence[int] = (-2, 0, 2)
) -> NDArray[np.float32]:
    """Stack each slice with its neighbours as channels (2.5D input).

    Parameters
    ----------
    volume : ndarray of shape (S, H, W), real dtype
        One stack (e.g. ``SliceStack.image`` after normalisation).
    slice_numbers : sequence of int, length S
        Slice numbers of the slices (``SliceStack.slice_numbers``).
    offsets : sequence of int, length K
        Slice-number offsets of the channels, e.g. ``(-2, 0, 2)``. Edge slices are
        repeated beyond the volume and the nearest available slice stands in for an
        absent one (module docstring).

    Returns
    -------
    ndarray of shape (S, H, W, K), dtype float32
        A new array; ``out[i, ..., k] = volume[neighbour_indices(...)[i, k]]``.

    Examples
    --------
    >>> vol = np.arange(3, dtype=np.float32)[:, None, None] * np.ones((3, 2, 2))
    >>> stack_25d(vol, [0, 1, 2], offsets=(-1, 0, 1))[:, 0, 0].tolist()
    [[0.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 2.0, 2.0]]
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must have shape (S, H, W), got {volume.shape}")
    if len(slice_numbers) != volume.shape[0]:
        raise ValueError(
            f"slice_numbers has {len(slice_numbers)} entries for {volume.shape[0]} slices"
        )
    idx = neighbour_indices(slice_numbers, offsets=offsets)
    return np.ascontiguousarray(np.moveaxis(volume[idx], 1, -1), dtype=np.float32)


def _check_size(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (int(image_size), int(image_size))
    try:
        rows, cols = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be an int or (rows, cols), got {image_size!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return rows, cols


def network_grid(
    shape: tuple[int, int],
    spacing: tuple[float, float],
    *,
    image_size: int | None = 256,
    spacing_mm: float | None = None,
) -> tuple[int, int] | None:
    """The grid a stack of ``shape`` (rows, cols) and pixel ``spacing`` (mm) is prepared
    on: ``(image_size, image_size)``; with ``image_size=None`` the native grid (None), or,
    given ``spacing_mm``, the grid on which a pixel covers ``spacing_mm`` mm.

    On real scans a fixed grid stretches every field of view to the same side, so the
    same organ looks larger in a small scan than in a large one (x1.5 between the Kaggle
    fields of view, 351 to 540 mm); a fixed spacing keeps organs their physical size, as
    nnU-Net's resampling does. (The phantom scales its anatomy with the image side, not
    the spacing, so there the fixed grid is the consistent one.)

    Examples
    --------
    >>> network_grid((234, 234), (1.63, 1.63), image_size=128)
    (128, 128)
    >>> network_grid((310, 360), (1.5, 1.5), image_size=None, spacing_mm=3.0)
    (155, 180)
    >>> network_grid((310, 360), (1.5, 1.5), image_size=None) is None
    True
    """
    if image_size is not None:
        return _check_size(image_size)
    if spacing_mm is None:
        return None
    if not spacing_mm > 0:
        raise ValueError(f"spacing_mm must be > 0, got {spacing_mm!r}")
    return tuple(max(1, int(round(n * float(s) / spacing_mm)))
                 for n, s in zip(shape, spacing, strict=True))


def prepare_volume(
    image: NDArray,
    *,
    image_size: int | tuple[int, int] | None = 256,
    percentiles: tuple[float, float] = (0.5, 99.5),
) -> NDArray[np.float32]:
    """One stack normalised as a volume and each slice resized: (S, rows, cols) float32.

    ``image_size=None`` keeps the native grid (S, H, W). The 2.5D input of slice ``i`` is ``volume[neighbour_indices(...)[i]]``: stacking after
    resizing gives exactly :func:`prepare_images` (resizing acts per channel), so a stack
    can be stored once, one channel per slice.
    """
    size = _check_size(image_size)
    image = np.asarray(image)
    if image.size and float(np.ptp(image)) == 0.0:
        # A constant stack (e.g. blank padding slices) has nothing to normalise; as in
        # gitract.tracks.normalize_stack it becomes zeros instead of an error.
        vol = np.zeros(image.shape, np.float32)
    else:
        vol = normalize_intensity(image, lower=percentiles[0], upper=percentiles[1])
    size = vol.shape[1:3] if size is None else size
    out = np.empty((vol.shape[0], *size), dtype=np.float32)
    for i in range(vol.shape[0]):
        r = vol[i] if vol.shape[1:3] == size else resize_to(vol[i], size, order=1)
        out[i] = np.clip(r, 0.0, 1.0)
    return out


def prepare_images(
    image: NDArray,
    slice_numbers: Sequence[int],
    *,
    offsets: Sequence[int] = (-2, 0, 2),
    image_size: int | tuple[int, int] | None = 256,
    percentiles: tuple[float, float] = (0.5, 99.5),
) -> NDArray[np.float32]:
    """Network input of one stack: normalise per volume, resize, stack 2.5D.

    Parameters
    ----------
    image : ndarray of shape (S, H, W)
        Raw intensities of one stack (``SliceStack.image``).
    slice_numbers : sequence of int, length S
    offsets : sequence of int, length K
    image_size : int or (int, int) or None
        Network grid (rows, cols); every slice is resized to it (aspect not kept, as the
        predictions are resized back to each slice's own grid). None: the native grid.
    percentiles : (float, float)
        Passed to :func:`gitract.preprocessing.normalize_intensity` for the whole stack.

    Returns
    -------
    ndarray of shape (S, K, rows, cols), dtype float32, values in [0, 1]
        Channel-first, ready for a torch tensor.
    """
    image = np.asarray(image)
    if len(slice_numbers) != image.shape[0]:
        raise ValueError(
            f"slice_numbers has {len(slice_numbers)} entries for {image.shape[0]} slices")
    volume = prepare_volume(image, image_size=image_size, percentiles=percentiles)
    idx = neighbour_indices(slice_numbers, offsets=offsets)
    return np.ascontiguousarray(volume[idx], dtype=np.float32)


def prepare_masks(
    masks: NDArray, *, image_size: int | tuple[int, int] | None = 256
) -> NDArray[np.float32]:
    """Training targets of one stack: (S, H, W, C) bool -> (S, C, rows, cols) float32 {0, 1}.

    Nearest-neighbour resizing keeps the labels binary; ``image_size=None`` keeps the
    native grid.
    """
    size = _check_size(image_size)
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 4:
        raise ValueError(f"masks must have shape (S, H, W, C), got {masks.shape}")
    size = masks.shape[1:3] if size is None else size
    out = np.empty((masks.shape[0], masks.shape[3], *size), dtype=np.float32)
    for i in range(masks.shape[0]):
        r = masks[i] if masks.shape[1:3] == size else resize_to(masks[i], size)
        out[i] = np.moveaxis(r, -1, 0)
    return out


def resize_proba_back(proba: NDArray, shape: tuple[int, int]) -> NDArray[np.float32]:
    """Probabilities on the network grid (S, C, rows, cols) -> (S, H, W, C) on ``shape``.

    Bilinear, with the same pixel-centre convention as the forward resize, so that the
    round trip network grid <-> slice grid keeps structures where they were.
    """
    proba = np.asarray(proba, dtype=np.float32)
    if proba.ndim != 4:
        raise ValueError(f"proba must have shape (S, C, rows, cols), got {proba.shape}")
    shape = _check_size(shape)
    if shape is None:
        raise ValueError("shape must be an int or (rows, cols), got None")
    out = np.empty((proba.shape[0], *shape, proba.shape[1]), dtype=np.float32)
    for i in range(proba.shape[0]):
        p = np.moveaxis(proba[i], 0, -1)
        out[i] = p if p.shape[:2] == shape else resize_to(p, shape, order=1)
    return np.clip(out, 0.0, 1.0, out=out)
