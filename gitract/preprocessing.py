"""Pure array transforms applied before feature extraction or network input."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["crop_pads", "normalize_intensity", "pad_to_multiple", "resize_to"]


def normalize_intensity(
    volume: NDArray, *, lower: float = 0.5, upper: float = 99.5
) -> NDArray[np.float32]:
    """Clip a volume to its own percentiles and scale it to [0, 1].

    MRI intensities have no absolute scale and the 16-bit ranges differ between scans,
    so the percentiles are taken per volume (a whole case-day stack, or one slice).

    Parameters
    ----------
    volume : ndarray of any shape, real dtype
        Raw intensities (e.g. ``SliceStack.image``, (S, H, W) float32).
    lower, upper : float
        Percentiles mapped to 0 and 1, with ``0 <= lower < upper <= 100``. When they
        coincide (a volume that is almost all one value) the min and max are used.

    Returns
    -------
    ndarray of the same shape, dtype float32, values in [0, 1]

    Raises
    ------
    ValueError
        Bad percentiles, non-finite values, an empty or a constant volume.

    Examples
    --------
    >>> normalize_intensity(np.array([0, 100, 200, 40000]), lower=0, upper=100).tolist()
    [0.0, 0.0024999999441206455, 0.004999999888241291, 1.0]
    >>> normalize_intensity(np.array([0, 1, 2, 3, 4]), lower=25, upper=75).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0]
    """
    if not 0 <= lower < upper <= 100:
        raise ValueError(
            f"need 0 <= lower < upper <= 100, got lower={lower!r}, upper={upper!r}"
        )
    v = np.asarray(volume, dtype=np.float64)
    if v.size == 0:
        raise ValueError("volume is empty")
    if not np.isfinite(v).all():
        raise ValueError("volume holds NaN or infinite values")
    lo, hi = np.percentile(v, [lower, upper])
    if hi <= lo:
        lo, hi = v.min(), v.max()
    if hi <= lo:
        raise ValueError(
            f"volume is constant (every value is {lo!r}); cannot normalise"
        )
    return np.clip((v - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def resize_to(image: NDArray, shape: Sequence[int], *, order: int = 1) -> NDArray:
    """Resize an (H, W) or (H, W, C) array to ``shape`` = (H', W').

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C)
        Intensities (any real dtype) or a bool mask.
    shape : (int, int)
        Output (rows, cols); channels are kept.
    order : int
        Spline order for intensities (0 nearest, 1 bilinear, 3 bicubic). Bool masks
        always use nearest neighbour (order 0), so labels stay labels.

    Returns
    -------
    ndarray of shape (H', W') or (H', W', C)
        float32 for intensities (values kept, anti-aliased when shrinking), bool for
        masks.

    Examples
    --------
    >>> resize_to(np.eye(2, dtype=bool), (4, 4)).astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    >>> resize_to(np.full((4, 6, 3), 1000.0), (2, 3)).shape
    (2, 3, 3)
    """
    from skimage.transform import resize

    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
    if len(shape) != 2 or any(int(n) < 1 for n in shape):
        raise ValueError(f"shape must be two positive ints (H, W), got {shape!r}")
    out_shape = (int(shape[0]), int(shape[1]), *image.shape[2:])
    if image.dtype == bool:
        return resize(
            image,
            out_shape,
            order=0,
            mode="edge",
            anti_aliasing=False,
            preserve_range=True,
        ).astype(bool)
    if order not in range(6):
        raise ValueError(f"order must be an int in 0..5, got {order!r}")
    shrink = out_shape[0] < image.shape[0] or out_shape[1] < image.shape[1]
    return resize(
        image.astype(np.float32, copy=False),
        out_shape,
        order=order,
        mode="edge",
        anti_aliasing=shrink and order > 0,
        preserve_range=True,
    ).astype(np.float32)


def _check_axes(array: NDArray, axes: Sequence[int]) -> tuple[int, ...]:
    axes = tuple(int(a) % array.ndim for a in axes) if array.ndim else ()
    if len(axes) != 2 or len(set(axes)) != 2:
        raise ValueError(
            f"axes must name two distinct axes of a {array.ndim}D array, got {axes!r}"
        )
    return axes


def pad_to_multiple(
    image: NDArray,
    multiple: int,
    *,
    mode: str = "reflect",
    axes: Sequence[int] = (0, 1),
) -> tuple[NDArray, tuple[tuple[int, int], tuple[int, int]]]:
    """Pad the two spatial axes up to the next multiple of ``multiple``.

    The padding is split evenly between both sides (the extra pixel at the end), so
    the image stays centred. Networks that halve the size ``depth`` times need inputs
    divisible by ``2**depth``.

    Parameters
    ----------
    image : ndarray
        (H, W), (H, W, C), or any array whose spatial ``axes`` are given.
    multiple : int
        Positive int.
    mode : str
        :func:`numpy.pad` mode (``"reflect"``, ``"constant"``, ``"edge"``, ...).
    axes : (int, int)
        The (rows, cols) axes; ``(1, 2)`` for an (S, H, W) stack.

    Returns
    -------
    padded : ndarray, same dtype
    pads : ((top, bottom), (left, right))
        For :func:`crop_pads`.

    Examples
    --------
    >>> padded, pads = pad_to_multiple(np.ones((5, 8)), 4)
    >>> padded.shape, pads
    ((8, 8), ((1, 2), (0, 0)))
    >>> crop_pads(padded, pads).shape
    (5, 8)
    """
    if (
        isinstance(multiple, bool)
        or not isinstance(multiple, (int, np.integer))
        or multiple < 1
    ):
        raise ValueError(f"multiple must be a positive int, got {multiple!r}")
    image = np.asarray(image)
    axes = _check_axes(image, axes)
    pads = []
    for ax in axes:
        total = -image.shape[ax] % int(multiple)
        pads.append((total // 2, total - total // 2))
    width = [(0, 0)] * image.ndim
    for ax, pad in zip(axes, pads, strict=True):
        width[ax] = pad
    if not any(sum(p) for p in pads):
        return image.copy(), (pads[0], pads[1])
    return np.pad(image, width, mode=mode), (pads[0], pads[1])


def crop_pads(
    padded: NDArray,
    pads: tuple[tuple[int, int], tuple[int, int]],
    *,
    axes: Sequence[int] = (0, 1),
) -> NDArray:
    """Undo :func:`pad_to_multiple` (also on predictions made from the padded input).

    Parameters
    ----------
    padded : ndarray
    pads : ((top, bottom), (left, right))
    axes : (int, int)
        The axes ``pads`` refers to.

    Returns
    -------
    ndarray
        A view of ``padded`` without the padding.

    Examples
    --------
    >>> crop_pads(np.arange(16).reshape(4, 4), ((1, 1), (0, 2))).tolist()
    [[4, 5], [8, 9]]
    """
    padded = np.asarray(padded)
    axes = _check_axes(padded, axes)
    index = [slice(None)] * padded.ndim
    for ax, (before, after) in zip(axes, pads, strict=True):
        index[ax] = slice(int(before), padded.shape[ax] - int(after))
    return padded[tuple(index)]
