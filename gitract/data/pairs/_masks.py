"""Mask files as boolean channels: colour masks (nearest colour) and label values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gitract.data.pairs._files import _to_gray
from gitract.data.record import DataError


def map_colours_to_masks(
    rgb: NDArray,
    colours: Mapping[str, Sequence[int]],
    classes: Sequence[str],
    *,
    far_distance: float = 40.0,
    max_far_fraction: float = 0.05,
    where: str = "mask",
) -> NDArray[np.bool_]:
    """Map every pixel of a colour mask to the nearest reference colour.

    Parameters
    ----------
    rgb : ndarray of shape (..., 3), integer or float
        Colour mask (extra channels after the third, e.g. alpha, are ignored).
    colours : mapping of str to (r, g, b)
        Reference colours of every class and of ``"background"`` (default black).
        Colours of names not in ``classes`` are known but give no channel.
    classes : sequence of str
        Classes to return, in channel order; each needs a colour.
    far_distance : float
        Euclidean RGB distance beyond which a pixel counts as "far from every colour".
    max_far_fraction : float
        Largest tolerated share of far pixels (interpolated edges give ~0.1-2 %).
    where : str
        Name used in error messages (the file).

    Returns
    -------
    masks : ndarray of shape (..., C), dtype bool
        One channel per class; channels never overlap.

    Raises
    ------
    DataError
        When too many pixels are far from every reference colour.

    Examples
    --------
    >>> m = np.array([[[250, 5, 0], [0, 0, 0]]], dtype=np.uint8)
    >>> map_colours_to_masks(m, {"stomach": (255, 0, 0)}, ["stomach"])[..., 0].tolist()
    [[True, False]]
    """
    missing = [c for c in classes if c not in colours]
    if missing:
        raise ValueError(f"colours has no entry for classes {missing}")
    names = list(dict.fromkeys([*colours, "background"]))
    ref = np.array(
        [colours.get(n, (0, 0, 0)) for n in names], dtype=np.float32
    ).reshape(len(names), 3)
    rgb = np.asarray(rgb)
    if rgb.shape[-1] < 3:
        raise DataError(f"{where}: colour mask expected (..., 3), got shape {rgb.shape}")
    pix = rgb[..., :3].reshape(-1, 3)
    if np.issubdtype(pix.dtype, np.integer) and pix.size and pix.min() >= 0 and pix.max() < 256:
        # Blurred masks hold a few thousand distinct colours: measure those, not every pixel.
        # Most pixels hold a reference colour exactly; only the others need distances.
        packed = (pix[:, 0].astype(np.int32) << 16) | (pix[:, 1].astype(np.int32) << 8) | pix[:, 2]
        ref_packed = (ref[:, 0].astype(np.int32) << 16) | (ref[:, 1].astype(np.int32) << 8) | ref[
            :, 2].astype(np.int32)
        nearest = np.full(packed.shape, -1, dtype=np.int64)
        for k in range(len(names) - 1, -1, -1):  # first listed wins on duplicate colours
            nearest[packed == ref_packed[k]] = k
        rest = np.flatnonzero(nearest < 0)
        far = np.zeros(packed.shape, dtype=bool)
        if rest.size:
            uniq, inverse = np.unique(packed[rest], return_inverse=True)
            cand = np.stack([uniq >> 16, (uniq >> 8) & 255, uniq & 255], axis=1).astype(np.float32)
            d2 = ((cand[:, None, :] - ref[None, :, :]) ** 2).sum(axis=-1)
            nearest[rest] = d2.argmin(axis=1)[inverse]
            far[rest] = (np.sqrt(d2.min(axis=1)) > far_distance)[inverse]
    else:
        d2 = ((pix.astype(np.float32)[:, None, :] - ref[None, :, :]) ** 2).sum(axis=-1)
        nearest = d2.argmin(axis=1)
        far = np.sqrt(d2.min(axis=1)) > far_distance
    if pix.shape[0] and far.mean() > max_far_fraction:
        odd = pix[far][0].astype(int).tolist()
        raise DataError(
            f"{where}: {far.mean():.1%} of pixels are more than {far_distance} RGB units "
            f"from every reference colour (e.g. {odd}); unknown colour map?"
        )
    out = np.stack([nearest == names.index(c) for c in classes], axis=-1)
    return out.reshape(*rgb.shape[:-1], len(classes))


def _label_masks(
    arr: NDArray,
    label_values: Mapping[str, int],
    classes: Sequence[str],
    background_value: int | None,
    where: str,
) -> NDArray[np.bool_]:
    if arr.ndim == 4:  # gray stored as RGB(A)
        arr = _to_gray(arr, Path(where))
    missing = [c for c in classes if c not in label_values]
    if missing:
        raise ValueError(f"label_values has no entry for classes {missing}")
    if background_value is not None:
        allowed = np.array([*label_values.values(), background_value])
        unknown = ~np.isin(arr, allowed)
        if unknown.any():
            raise DataError(
                f"{where}: mask holds values {np.unique(arr[unknown])[:10].tolist()} outside "
                f"the label values {sorted(allowed.tolist())}"
            )
    return np.stack([arr == label_values[c] for c in classes], axis=-1)
