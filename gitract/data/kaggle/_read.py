"""Reading a Kaggle-layout dataset as one :class:`SliceStack` per case-day."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gitract.constants import CLASSES
from gitract.data.kaggle._csv import _decode, default_csv, match_rows, read_csv
from gitract.data.kaggle._files import _natural, check_images, scan_images
from gitract.data.kaggle._png import read_kaggle_png
from gitract.data.kaggle._problems import Problems
from gitract.data.record import SliceStack


def read_kaggle_dataset(
    data_dir: str | Path,
    *,
    csv_path: str | Path | None = None,
    classes: Sequence[str] = CLASSES,
    order: str = "C",
    images_subdir: str = "train",
    allow_gaps: bool = False,
) -> list[SliceStack]:
    """Read a Kaggle-layout dataset as one :class:`SliceStack` per case-day.

    Parameters
    ----------
    data_dir : path
        Dataset root (``train.csv`` and ``train/``).
    csv_path : path, optional
        RLE CSV (``id,class,segmentation``). Default ``data_dir/train.csv`` when it
        exists and ``images_subdir == "train"``; without a CSV the stacks have
        ``masks=None`` (e.g. the test folder).
    classes : sequence of str
        Classes, in mask-channel order. Rows of other competition classes are ignored.
    order : {"C", "F"}
        RLE pixel order (row-major by default).
    images_subdir : str
        Folder of the scans under ``data_dir``.
    allow_gaps : bool
        Read a sparse stack (slices missing between its first and last) as the slices
        present, with their true ``slice_numbers``, instead of stopping; see
        :func:`gap_warning` for the line a caller may print.

    Returns
    -------
    list of SliceStack
        Sorted by case and day (natural order); slices sorted by slice number;
        ``image`` float32 raw 16-bit values, ``masks`` (S, H, W, C) bool with
        overlapping classes kept per channel, ``spacing`` (row, col) mm from the file
        names, ``source`` the scans folder, ``meta`` ``{"dtype": "uint16", "csv",
        "order", "paths"}``.

    Raises
    ------
    DataError
        At the first problem, naming the file or CSV row: bad file names, unreadable,
        non-16-bit, mis-sized or constant PNGs, CSV rows without images, images without
        rows, duplicate (id, class) rows, unknown classes, malformed or out-of-bounds
        RLE, gaps in a slice stack (unless ``allow_gaps``), mixed sizes inside a case-day.
    """
    data_dir = Path(data_dir)
    problems = Problems(strict=True)
    images = check_images(scan_images(data_dir / images_subdir, problems), problems,
                           allow_gaps=allow_gaps)
    csv = default_csv(data_dir, csv_path, images_subdir)
    images = images.sort_values(["case", "day", "slice"]).reset_index(drop=True)
    masks_by_id: dict[str, NDArray[np.bool_]] = {}
    if csv is not None:
        rows = read_csv(csv, classes, problems)
        joined = match_rows(images, rows, csv, classes, problems)
        channel = {c: k for k, c in enumerate(classes)}
        for slice_id, cls, mask in _decode(joined, csv, order, problems):
            if slice_id not in masks_by_id:
                masks_by_id[slice_id] = np.zeros(
                    (*mask.shape, len(classes)), dtype=bool
                )
            masks_by_id[slice_id][:, :, channel[cls]] = mask
    stacks = []
    groups = images.groupby(["case", "day"], sort=False)
    for case, day in sorted(
        groups.groups, key=lambda k: (_natural(k[0]), _natural(k[1]))
    ):
        group = groups.get_group((case, day)).sort_values("slice")
        h, w = int(group["height"].iloc[0]), int(group["width"].iloc[0])
        image = np.stack(
            [read_kaggle_png(p, expected_shape=(h, w)) for p in group["path"]]
        )
        masks = None
        if csv is not None:
            masks = np.zeros((*image.shape, len(classes)), dtype=bool)
            for s, slice_id in enumerate(group["id"]):
                if slice_id in masks_by_id:
                    masks[s] = masks_by_id[slice_id]
        stacks.append(
            SliceStack(
                image=image.astype(np.float32),
                masks=masks,
                classes=tuple(classes),
                spacing=(
                    float(group["spacing_row"].iloc[0]),
                    float(group["spacing_col"].iloc[0]),
                ),
                ids=tuple(group["id"]),
                case=case,
                day=day,
                slice_numbers=tuple(int(n) for n in group["slice"]),
                source=group["path"].iloc[0].parent,
                meta={
                    "dtype": "uint16",
                    "csv": None if csv is None else str(csv),
                    "order": order,
                    "paths": tuple(str(p) for p in group["path"]),
                },
            )
        )
    return stacks
