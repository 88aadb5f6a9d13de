"""Masks as Kaggle RLE rows, and submission files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from gitract.data.kaggle._csv import _write_csv
from gitract.data.record import DataError, SliceStack
from gitract.data.rle import rle_encode


def stacks_to_rle_frame(
    stacks: Sequence[SliceStack],
    masks_by_key: Mapping[str, NDArray[np.bool_]] | None = None,
    *,
    column: str = "segmentation",
    order: str = "C",
) -> pd.DataFrame:
    """Encode masks as Kaggle rows: one per (slice id, class).

    Parameters
    ----------
    stacks : list of SliceStack
        Give the ids and classes (and the masks when ``masks_by_key`` is None).
    masks_by_key : dict of str to ndarray of shape (S, H, W, C), dtype bool, optional
        Predicted masks keyed by ``SliceStack.key``; default each stack's own masks.
    column : str
        Name of the RLE column (``"segmentation"`` or ``"predicted"``).
    order : {"C", "F"}
        RLE pixel order.

    Returns
    -------
    DataFrame
        Columns ``id, class, <column>``; ids in stack order, classes in channel order.

    Raises
    ------
    DataError
        A stack without masks, or masks of the wrong shape (naming the stack).
    """
    records = []
    for stack in stacks:
        masks = stack.masks if masks_by_key is None else masks_by_key.get(stack.key)
        if masks is None:
            raise DataError(f"{stack.key}: no masks to encode")
        masks = np.asarray(masks)
        expected = (stack.n_slices, *stack.shape, len(stack.classes))
        if masks.shape != expected:
            raise DataError(
                f"{stack.key}: masks have shape {masks.shape}, expected {expected}"
            )
        for s, slice_id in enumerate(stack.ids):
            for c, cls in enumerate(stack.classes):
                records.append(
                    (slice_id, cls, rle_encode(masks[s, :, :, c], order=order))
                )
    return pd.DataFrame.from_records(records, columns=["id", "class", column])


def write_submission(
    frame_or_stacks: pd.DataFrame | Sequence[SliceStack],
    path: str | Path,
    *,
    masks_by_key: Mapping[str, NDArray[np.bool_]] | None = None,
    order: str = "C",
) -> Path:
    """Write a Kaggle submission ``id,class,predicted`` atomically.

    Parameters
    ----------
    frame_or_stacks : DataFrame or list of SliceStack
        A frame with ``id``, ``class`` and ``predicted`` (or ``segmentation``) columns,
        or stacks encoded with :func:`stacks_to_rle_frame`.
    path : path
        Destination CSV; left untouched when anything fails.
    masks_by_key, order
        Passed to :func:`stacks_to_rle_frame` when stacks are given.

    Returns
    -------
    Path
    """
    if isinstance(frame_or_stacks, pd.DataFrame):
        frame = frame_or_stacks
        if "predicted" not in frame.columns and "segmentation" in frame.columns:
            frame = frame.rename(columns={"segmentation": "predicted"})
    else:
        frame = stacks_to_rle_frame(
            frame_or_stacks, masks_by_key, column="predicted", order=order
        )
    missing = {"id", "class", "predicted"} - set(frame.columns)
    if missing:
        raise ValueError(
            f"submission frame lacks column(s) {sorted(missing)}; "
            f"got {list(frame.columns)}"
        )
    return _write_csv(frame, path, ["id", "class", "predicted"])
