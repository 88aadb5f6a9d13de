"""Decoding a Kaggle submission frame into predicted masks per stack."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from gitract.data.record import DataError, SliceStack
from gitract.data.rle import rle_decode


def decode_submission(
    submission: pd.DataFrame,
    truth: Sequence[SliceStack],
    *,
    column: str | None = None,
    order: str = "C",
    where: str = "submission",
) -> dict[str, NDArray[np.bool_]]:
    """Decode a Kaggle submission frame (``id, class, predicted``) into masks per stack.

    Parameters
    ----------
    submission : DataFrame
        Columns ``id``, ``class`` and the RLE column (``predicted``, or ``segmentation``
        as written by ``gitract.data.kaggle.stacks_to_rle_frame``).
    truth : list of SliceStack
        Gives the ids, classes and slice shapes.
    column : str, optional
        RLE column name; default ``predicted`` if present, else ``segmentation``.
    order : {"C", "F"}
        RLE pixel order.
    where : str
        Name of the source for error messages (e.g. the CSV path).

    Returns
    -------
    dict of str to ndarray of shape (S, H, W, C), dtype bool
        Keyed by ``SliceStack.key``.

    Raises
    ------
    DataError
        Missing columns, a (id, class) row missing or given twice, unknown ids or classes,
        or a malformed RLE; the message names the id and class.
    """
    named = column is not None
    if column is None:
        column = "predicted" if "predicted" in submission.columns else "segmentation"
    missing = {"id", "class", column} - set(submission.columns)
    if missing:
        if not named and column in missing:  # name the submission's column, its alias after
            missing = (missing - {column}) | {"predicted"}
        alias = " ('segmentation' is accepted for 'predicted')" if "predicted" in missing else ""
        raise DataError(
            f"{where}: missing column(s) {sorted(missing)}{alias}; found "
            f"{list(submission.columns)}"
        )
    classes = truth[0].classes if truth else ()
    index: dict[str, tuple[SliceStack, int]] = {}
    for stack in truth:
        for s, slice_id in enumerate(stack.ids):
            index[slice_id] = (stack, s)
    out = {
        stack.key: np.zeros((stack.n_slices, *stack.shape, len(classes)), dtype=bool)
        for stack in truth
    }
    class_pos = {c: k for k, c in enumerate(classes)}
    seen: set[tuple[str, str]] = set()
    for row_no, (slice_id, cls, rle) in enumerate(
        zip(submission["id"], submission["class"], submission[column], strict=True), start=2
    ):
        slice_id, cls = str(slice_id), str(cls)
        label = f"{where} line {row_no} (id {slice_id!r}, class {cls!r})"
        if slice_id not in index:
            raise DataError(f"{label}: id is not in the truth data")
        if cls not in class_pos:
            raise DataError(f"{label}: unknown class; expected one of {list(classes)}")
        if (slice_id, cls) in seen:
            raise DataError(f"{label}: row given twice")
        seen.add((slice_id, cls))
        stack, s = index[slice_id]
        out[stack.key][s, :, :, class_pos[cls]] = rle_decode(
            rle, stack.shape, order=order, where=label
        )
    for stack in truth:
        for slice_id in stack.ids:
            for cls in classes:
                if (slice_id, cls) not in seen:
                    raise DataError(f"{where}: no row for id {slice_id!r}, class {cls!r}")
    return out
