"""Probability maps: block predictions on a grid of centres, interpolated onto the slice.

A block classifier predicts the class of the block *centre* pixel. On a grid of centres
(:func:`gitract.blocks.block_grid`, which always includes the last row and column) the
per-class probabilities are known exactly at those pixels; every other pixel is
interpolated in *index space* between its neighbouring centres. A probability computed
for the block centred at ``(r, c)`` therefore lands exactly on pixel ``(r, c)``: the seed
project resized a ``(nr, nc)`` map onto the slice, which shifted it by up to half a
block.

Block classifiers are multi-class over ``("background",) + CLASSES`` with ``classes_``
holding ints (0 = background, ``k`` = ``CLASSES[k - 1]``); the map keeps only the organ
channels, ordered like ``classes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import CubicSpline

from gitract.blocks import block_grid
from gitract.constants import CLASSES
from gitract.features import make_featurizer

__all__ = [
    "INTERPOLATIONS",
    "centres_to_map",
    "class_columns",
    "organ_proba",
    "predict_proba_map",
]

#: Interpolation methods of :func:`centres_to_map`.
INTERPOLATIONS: tuple[str, ...] = ("nearest", "linear", "cubic")

#: Centres per ``predict_proba`` call (bounds the feature matrix at step 1).
_BATCH = 65536


def _check_interpolation(interpolation: str) -> str:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    return interpolation


def _check_axis(centres, size: int, name: str) -> NDArray[np.intp]:
    centres = np.asarray(centres)
    if centres.ndim != 1 or centres.size == 0 or not np.issubdtype(centres.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty 1-D int array, got {centres!r}")
    if np.any(np.diff(centres) <= 0) or centres[0] < 0 or centres[-1] >= size:
        raise ValueError(f"{name} must increase strictly inside [0, {size}), got {centres.tolist()}")
    return centres.astype(np.intp)


def _interp_axis(values: NDArray, centres: NDArray[np.intp], size: int, axis: int, method: str) -> NDArray:
    """Interpolate ``values`` (known at ``centres`` along ``axis``) onto ``0..size-1``.

    Pixels before the first or after the last centre take the value of that centre
    (no extrapolation; :func:`block_grid` puts centres on both borders anyway).
    """
    if len(centres) == 1:
        return np.repeat(values, size, axis=axis)
    x = np.clip(np.arange(size, dtype=np.float64), centres[0], centres[-1])
    if method == "nearest":
        upper = np.clip(np.searchsorted(centres, x, side="left"), 1, len(centres) - 1)
        # Ties (a pixel midway between two centres) go to the lower centre.
        nearest = np.where(x - centres[upper - 1] <= centres[upper] - x, upper - 1, upper)
        return np.take(values, nearest, axis=axis)
    if method == "linear":
        lower = np.clip(np.searchsorted(centres, x, side="right") - 1, 0, len(centres) - 2)
        t = (x - centres[lower]) / (centres[lower + 1] - centres[lower])
        shape = [1] * values.ndim
        shape[axis] = size
        t = t.reshape(shape)
        # (1 - t) * a + t * b is exactly a at t = 0 and exactly b at t = 1.
        return (1.0 - t) * np.take(values, lower, axis=axis) + t * np.take(values, lower + 1, axis=axis)
    return CubicSpline(centres, values, axis=axis)(x)


def centres_to_map(
    values: NDArray[np.floating],
    rows: NDArray[np.integer],
    cols: NDArray[np.integer],
    shape: Sequence[int],
    *,
    interpolation: str = "linear",
) -> NDArray[np.float32]:
    """Interpolate values known on a grid of block centres onto every pixel of a slice.

    The interpolation is separable (rows, then columns) in pixel-index space, so the
    value given for centre ``(rows[i], cols[j])`` is the map's value at that pixel
    (exactly for ``"nearest"`` and ``"linear"``, to rounding for ``"cubic"``). Pixels
    outside the span of the centres take the border centre's value.

    Parameters
    ----------
    values : ndarray of shape (nr, nc, C), float
        Values at the centres, e.g. class probabilities.
    rows : ndarray of shape (nr,), int
        Strictly increasing row centres inside ``[0, H)``.
    cols : ndarray of shape (nc,), int
        Strictly increasing column centres inside ``[0, W)``.
    shape : tuple of int
        ``(H, W)`` of the slice.
    interpolation : {"nearest", "linear", "cubic"}, default "linear"
        ``"cubic"`` is a not-a-knot cubic spline along each axis; it can overshoot, so
        its output is clipped to the range of ``values``.

    Returns
    -------
    map : ndarray of shape (H, W, C), dtype float32

    Raises
    ------
    ValueError
        On a bad ``interpolation``, centres or shapes.

    Examples
    --------
    >>> values = np.array([[[0.0], [1.0]]])  # one row of centres, two columns
    >>> centres_to_map(values, np.array([0]), np.array([0, 4]), (1, 5))[0, :, 0].tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    interpolation = _check_interpolation(interpolation)
    height, width = (int(s) for s in tuple(shape)[:2])
    values = np.asarray(values)
    if values.ndim != 3:
        raise ValueError(f"values must have shape (nr, nc, C), got shape {values.shape}")
    rows = _check_axis(rows, height, "rows")
    cols = _check_axis(cols, width, "cols")
    if values.shape[:2] != (len(rows), len(cols)):
        raise ValueError(
            f"values shape {values.shape} does not match {len(rows)} rows x {len(cols)} cols"
        )
    work = values.astype(np.float64)
    out = _interp_axis(work, rows, height, 0, interpolation)
    out = _interp_axis(out, cols, width, 1, interpolation)
    if interpolation == "cubic" and values.size:
        out = np.clip(out, work.min(), work.max())
    return out.astype(np.float32)


def class_columns(model_classes: Sequence[Any], classes: Sequence[str] = CLASSES) -> list[int | None]:
    """Column of ``predict_proba`` holding each organ class, or None when the model lacks it.

    Class ``classes[k - 1]`` is the int label ``k`` (the block-classifier contract); a
    model whose ``classes_`` are class names is matched by name instead.

    Examples
    --------
    >>> class_columns([0, 1, 3], ("a", "b", "c"))
    [1, None, 2]
    """
    lookup = {}
    for j, label in enumerate(list(model_classes)):
        key = label.item() if isinstance(label, np.generic) else label
        lookup[key] = j
    out: list[int | None] = []
    for k, name in enumerate(classes, start=1):
        out.append(lookup.get(k, lookup.get(name)))
    return out


def organ_proba(
    proba: NDArray[np.floating], model: Any, classes: Sequence[str] = CLASSES
) -> NDArray[np.float32]:
    """Organ channels of a model's probabilities, ordered like ``classes``.

    Parameters
    ----------
    proba : ndarray of shape (..., n_model_classes)
        Columns ordered like ``model.classes_`` (``range(n)`` when it has none).
    model : estimator
    classes : sequence of str

    Returns
    -------
    ndarray of shape (..., len(classes)), dtype float32
        Zeros for a class the model never saw.
    """
    model_classes = getattr(model, "classes_", None)
    if model_classes is None:
        model_classes = list(range(proba.shape[-1]))
    columns = class_columns(model_classes, classes)
    out = np.zeros(proba.shape[:-1] + (len(classes),), dtype=np.float32)
    for k, j in enumerate(columns):
        if j is not None:
            out[..., k] = proba[..., j]
    return out


def predict_proba_map(
    model: Any,
    image: NDArray[np.floating],
    *,
    featurizer: Any | None = None,
    block_size: int | None = None,
    step: int = 4,
    interpolation: str = "linear",
    classes: Sequence[str] = CLASSES,
    use_dense: bool | None = None,
) -> NDArray[np.float32]:
    """Per-class probability map of one slice from a block classifier.

    The blocks centred on :func:`gitract.blocks.block_grid` ``(shape, step=step)`` are
    featurised (``featurizer.prepare`` once, ``transform_prepared`` in batches) and
    classified; their probabilities are put at the centres and interpolated onto every
    pixel with :func:`centres_to_map`. A model with ``predict_proba_dense(image)`` (the
    CNN: the probability of the block centred at every pixel in one pass) is used
    directly at ``step == 1``, and read at the grid centres for a larger step, so the
    map equals the block-wise one.

    Parameters
    ----------
    model : estimator
        Has ``predict_proba(X) -> (n, n_model_classes)`` and ``classes_`` (ints, 0 =
        background, ``k`` = ``classes[k - 1]``), or ``predict_proba_dense``.
    image : ndarray of shape (H, W), float32 in [0, 1]
        A normalised slice.
    featurizer : object, optional
        ``gitract.features`` featurizer (``prepare`` / ``transform_prepared``). Default:
        raw block pixels of ``block_size`` (what ``BlockCNNClassifier`` takes; with the
        context columns when the model has ``context_features``).
    block_size : int, optional
        Only used to build the default raw featurizer.
    step : int, default 4
        Distance between block centres.
    interpolation : {"nearest", "linear", "cubic"}, default "linear"
    classes : sequence of str, default ``CLASSES``
        Organ classes of the output channels.
    use_dense : bool, optional
        Use ``predict_proba_dense``; default: when the model has it and no featurizer
        is given.

    Returns
    -------
    proba : ndarray of shape (H, W, len(classes)), dtype float32

    Raises
    ------
    ValueError
        On a bad image, step or interpolation, or when no featurizer can be built.
    """
    interpolation = _check_interpolation(interpolation)
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must have shape (H, W), got shape {image.shape}")
    image = image.astype(np.float32, copy=False)
    rows, cols = block_grid(image.shape, step=step)
    has_dense = callable(getattr(model, "predict_proba_dense", None))
    if use_dense is None:
        use_dense = has_dense and featurizer is None
    if use_dense:
        if not has_dense:
            raise ValueError(f"use_dense=True but {type(model).__name__} has no predict_proba_dense")
        dense = organ_proba(np.asarray(model.predict_proba_dense(image)), model, classes)
        if step == 1:
            return dense
        grid = dense[np.ix_(rows, cols)]
    else:
        if featurizer is None:
            if block_size is None:
                raise ValueError("predict_proba_map needs a featurizer or a block_size")
            # A CNN with context features takes its blocks' context columns too.
            featurizer = make_featurizer("raw", block_size=block_size,
                                         context=getattr(model, "context_features", False) is True)
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        rr, cc = rr.ravel(), cc.ravel()
        state = featurizer.prepare(image)
        parts = []
        for start in range(0, rr.size, _BATCH):
            X = featurizer.transform_prepared(state, rr[start : start + _BATCH], cc[start : start + _BATCH])
            parts.append(np.asarray(model.predict_proba(X)))
        proba = np.concatenate(parts, axis=0)
        grid = organ_proba(proba, model, classes).reshape(len(rows), len(cols), len(classes))
    return centres_to_map(grid, rows, cols, image.shape, interpolation=interpolation)
