"""The RLE CSV (``id,class,segmentation``): read, match to images, decode, write."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from gitract.constants import CLASSES
from gitract.data.kaggle._problems import Problems
from gitract.data.rle import rle_decode
from gitract.utils.io import atomic_path

_ID_RE = r"^(case\d+)_(day\d+)_slice_(\d+)$"


def read_csv(
    csv: Path, classes: Sequence[str], problems: Problems
) -> pd.DataFrame | None:
    """The rows of ``classes`` in the RLE CSV, with their ``line``; unreadable files, bad
    ids, unknown classes and duplicates go to ``problems`` (None when unreadable)."""
    try:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (
        OSError,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
    ) as exc:
        problems(f"{csv}: cannot read the CSV: {exc}")
        return None
    missing = {"id", "class", "segmentation"} - set(frame.columns)
    if missing:
        problems(
            f"{csv}: missing column(s) {sorted(missing)}; found {list(frame.columns)}"
        )
        return None
    frame = frame[["id", "class", "segmentation"]].copy()
    frame["line"] = np.arange(len(frame)) + 2
    parts = frame["id"].str.extract(_ID_RE)
    for _, row in frame[parts[0].isna()].iterrows():
        problems(
            f"{csv}: line {row['line']}: id {row['id']!r} does not match "
            f"'caseN_dayM_slice_NNNN'"
        )
    known = set(classes) | set(CLASSES)
    for _, row in frame[~frame["class"].isin(known)].iterrows():
        problems(
            f"{csv}: line {row['line']}: row {row['id']} has unknown class "
            f"{row['class']!r}; expected one of {list(classes)}"
        )
    frame = frame[parts[0].notna() & frame["class"].isin(classes)]
    dup = frame.duplicated(["id", "class"], keep="first")
    for _, row in frame[dup].iterrows():
        problems(
            f"{csv}: line {row['line']}: duplicate row for id {row['id']} "
            f"class {row['class']}"
        )
    return frame[~dup]


def match_rows(
    images: pd.DataFrame,
    rows: pd.DataFrame,
    csv: Path,
    classes: Sequence[str],
    problems: Problems,
) -> pd.DataFrame:
    """Rows without images, images without rows; returns rows joined to their image."""
    image_ids = set(images["id"])
    orphan = rows[~rows["id"].isin(image_ids)]
    for slice_id, group in orphan.groupby("id", sort=True):
        problems(
            f"{csv}: line {group['line'].min()}: row {slice_id} has no image file "
            f"({len(group)} row(s))"
        )
    counts = rows.groupby("id")["class"].agg(set)
    for slice_id, path in zip(images["id"], images["path"], strict=True):
        have = counts.get(slice_id)
        if have is None:
            problems(f"{path}: image has no rows in {csv} (id {slice_id})")
        elif len(have) < len(classes):
            lacking = [c for c in classes if c not in have]
            problems(f"{csv}: id {slice_id} has no row for class(es) {lacking}")
    return rows.merge(images[["id", "width", "height"]], on="id", how="inner")


def _decode(
    joined: pd.DataFrame, csv: Path, order: str, problems: Problems
) -> Iterator[tuple[str, str, NDArray[np.bool_]]]:
    labelled = joined[joined["segmentation"].str.strip() != ""]
    for slice_id, cls, rle, w, h in zip(
        labelled["id"],
        labelled["class"],
        labelled["segmentation"],
        labelled["width"],
        labelled["height"],
        strict=True,
    ):
        with problems.catch():
            mask = rle_decode(
                rle, (h, w), order=order, where=f"{csv}: row {slice_id} {cls}"
            )
            yield slice_id, cls, mask


def default_csv(data_dir: Path, csv_path, images_subdir: str) -> Path | None:
    """``csv_path``, else ``data_dir/train.csv`` for the ``train`` images when it exists."""
    if csv_path is not None:
        return Path(csv_path)
    default = data_dir / "train.csv"
    return default if images_subdir == "train" and default.is_file() else None


def _write_csv(frame: pd.DataFrame, path: str | Path, columns: list[str]) -> Path:
    with atomic_path(path, suffix=".csv") as tmp:
        frame[columns].to_csv(tmp, index=False)
    return Path(path)


def write_train_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a ``train.csv`` (``id,class,segmentation``) atomically."""
    missing = {"id", "class", "segmentation"} - set(frame.columns)
    if missing:
        raise ValueError(
            f"train frame lacks column(s) {sorted(missing)}; got {list(frame.columns)}"
        )
    return _write_csv(frame, path, ["id", "class", "segmentation"])
