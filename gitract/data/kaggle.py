"""UW-Madison GI Tract (Kaggle) layout: ``train.csv`` RLE rows and 16-bit PNG slices.

Layout::

    DATA/train.csv                                    id,class,segmentation
    DATA/train/case123/case123_day20/scans/slice_0065_266_266_1.50_1.50.png

The file-name fields after ``slice_`` are the slice number, the width and height in
pixels and the pixel width and height in mm, so an image has shape (height, width) and
``spacing = (pixel height, pixel width)`` = (row, col) in mm.

Reading (:func:`read_kaggle_dataset`) stops at the first problem with a
:class:`~gitract.data.record.DataError` naming the file or row; validation
(:func:`validate_kaggle_dataset`) runs the same checks but collects every problem.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from gitract.constants import CLASSES
from gitract.data.record import DataError, SliceStack
from gitract.data.rle import rle_decode, rle_encode
from gitract.utils.io import atomic_path

__all__ = [
    "ValidationReport",
    "kaggle_png_name",
    "read_kaggle_dataset",
    "read_kaggle_png",
    "scan_kaggle_images",
    "stacks_to_rle_frame",
    "validate_kaggle_dataset",
    "write_kaggle_png",
    "write_submission",
    "write_train_csv",
]

_NUM = r"(\d+(?:\.\d+)?)"
_NAME_RE = re.compile(rf"^slice_(\d+)_(\d+)_(\d+)_{_NUM}_{_NUM}\.png$")
_FOLDER_RE = re.compile(r"^(case\d+)_(day\d+)$")
_ID_RE = r"^(case\d+)_(day\d+)_slice_(\d+)$"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IMAGE_COLUMNS = [
    "id",
    "case",
    "day",
    "slice",
    "path",
    "width",
    "height",
    "spacing_row",
    "spacing_col",
]


class _Problems:
    """Raise at the first problem (``strict``) or collect every one (validation)."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.items: list[str] = []

    def __call__(self, message: str) -> None:
        if self.strict:
            raise DataError(message)
        self.items.append(" ".join(str(message).split()))

    @contextlib.contextmanager
    def catch(self) -> Iterator[None]:
        try:
            yield
        except DataError as exc:
            if self.strict:
                raise
            self(str(exc))


def kaggle_png_name(
    slice_number: int, shape: tuple[int, int], spacing: tuple[float, float]
) -> str:
    """File name of one slice: ``slice_NNNN_W_H_PW_PH.png``.

    Parameters
    ----------
    slice_number : int
    shape : (int, int)
        (height, width) of the image.
    spacing : (float, float)
        (row, col) pixel spacing in mm, i.e. (pixel height, pixel width).

    Examples
    --------
    >>> kaggle_png_name(65, (310, 360), (1.5, 1.63))
    'slice_0065_360_310_1.63_1.50.png'
    """
    (h, w), (sr, sc) = shape, spacing
    size = f"{int(w)}_{int(h)}_{float(sc):.2f}_{float(sr):.2f}"
    return f"slice_{int(slice_number):04d}_{size}.png"


def _scan(root: Path, problems: _Problems) -> pd.DataFrame:
    if not root.is_dir():
        problems(f"{root}: images folder does not exist")
        return pd.DataFrame(columns=_IMAGE_COLUMNS)
    files = {p for p in root.rglob("*.png") if p.is_file()}
    files |= {p for p in root.glob("*/*/scans/*") if p.is_file()}
    records = []
    for path in sorted(files):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        m = _NAME_RE.match(path.name)
        if m is None:
            problems(f"{path}: file name does not match 'slice_NNNN_W_H_PW_PH.png'")
            continue
        folder = _FOLDER_RE.match(path.parent.parent.name)
        rel = path.relative_to(root).parts
        if (
            len(rel) != 4
            or path.parent.name != "scans"
            or folder is None
            or path.parent.parent.parent.name != folder.group(1)
        ):
            problems(f"{path}: not at <images>/caseN/caseN_dayM/scans/<file>")
            continue
        case, day = folder.group(1), folder.group(2)
        records.append(
            (
                f"{case}_{day}_slice_{m.group(1)}",
                case,
                day,
                int(m.group(1)),
                path,
                int(m.group(2)),
                int(m.group(3)),
                float(m.group(5)),
                float(m.group(4)),
            )
        )
    return pd.DataFrame.from_records(records, columns=_IMAGE_COLUMNS)


def scan_kaggle_images(
    data_dir: str | Path, *, images_subdir: str = "train"
) -> pd.DataFrame:
    """List the slice PNGs of a Kaggle-layout folder from their paths alone.

    Parameters
    ----------
    data_dir : path
        Dataset root holding ``<images_subdir>/caseN/caseN_dayM/scans/*.png``.
    images_subdir : str
        ``"train"`` or ``"test"``.

    Returns
    -------
    DataFrame
        One row per PNG, sorted by path: ``id, case, day, slice`` (int), ``path``,
        ``width, height`` (pixels) and ``spacing_row, spacing_col`` (mm).

    Raises
    ------
    DataError
        Missing folder, or a file whose name or place does not match the layout (named).
    """
    return _scan(Path(data_dir) / images_subdir, _Problems(strict=True))


def _png_header(path: Path) -> tuple[int, int]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file: {exc}") from None
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DataError(f"{path}: not a PNG file (bad signature or header)")
    return head[24], head[25]


def read_kaggle_png(
    path: str | Path, *, expected_shape: tuple[int, int] | None = None
) -> NDArray[np.uint16]:
    """Read one slice, keeping its 16-bit values.

    Parameters
    ----------
    path : path
        A 16-bit grayscale PNG.
    expected_shape : (int, int), optional
        (height, width) the image must have (from its file name).

    Returns
    -------
    ndarray of shape (H, W), dtype uint16

    Raises
    ------
    DataError
        Naming the file: unreadable or corrupt, not 16-bit grayscale (e.g. 8-bit), a
        shape other than ``expected_shape``, or a constant image. (A 16-bit integer PNG
        cannot hold NaN, so the bit-depth check also excludes non-finite values.)
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    bit_depth, colour_type = _png_header(path)
    if bit_depth != 16 or colour_type != 0:
        raise DataError(
            f"{path}: expected a 16-bit grayscale PNG, got bit depth {bit_depth}, "
            f"colour type {colour_type}"
        )
    try:
        with Image.open(path) as im:
            im.load()
            array = np.asarray(im)
    except (OSError, SyntaxError, ValueError, EOFError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: unreadable or corrupt PNG: {exc}") from None
    if array.ndim != 2 or array.dtype.kind not in "iu":
        raise DataError(
            f"{path}: expected a 2D integer image, got {array.dtype} {array.shape}"
        )
    if array.dtype != np.uint16:
        if array.min() < 0 or array.max() > 65535:
            raise DataError(f"{path}: values outside the 16-bit range")
        array = array.astype(np.uint16)
    if expected_shape is not None and array.shape != tuple(expected_shape):
        raise DataError(
            f"{path}: image is {array.shape[1]}x{array.shape[0]} (WxH) but the file "
            f"name says {expected_shape[1]}x{expected_shape[0]}"
        )
    if array.size == 0 or array.min() == array.max():
        raise DataError(
            f"{path}: constant image (every pixel is "
            f"{int(array.flat[0]) if array.size else 'absent'})"
        )
    return array


def write_kaggle_png(path: str | Path, array: NDArray[np.uint16]) -> Path:
    """Write a 2D uint16 array as a 16-bit grayscale PNG, atomically.

    Parameters
    ----------
    path : path
        Destination (parent folders are created).
    array : ndarray of shape (H, W), dtype uint16

    Returns
    -------
    Path
    """
    from PIL import Image

    array = np.asarray(array)
    if array.ndim != 2 or array.dtype != np.uint16:
        raise TypeError(f"array must be 2D uint16, got {array.dtype} {array.shape}")
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
    return Path(path)


def _read_csv(
    csv: Path, classes: Sequence[str], problems: _Problems
) -> pd.DataFrame | None:
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


def _check_images(images: pd.DataFrame, problems: _Problems) -> pd.DataFrame:
    """Duplicate slices, gaps and mixed sizes; returns the images of sound case-days."""
    bad: set[tuple[str, str]] = set()
    dup = images.duplicated(["case", "day", "slice"], keep=False)
    for (case, day, number), group in images[dup].groupby(["case", "day", "slice"]):
        problems(
            f"{case}_{day}: duplicate slice {number}: "
            + ", ".join(str(p) for p in group["path"])
        )
        bad.add((case, day))
    for (case, day), group in images.groupby(["case", "day"], sort=False):
        numbers = np.unique(group["slice"].to_numpy())
        missing = np.setdiff1d(np.arange(numbers[0], numbers[-1] + 1), numbers)
        folder = group["path"].iloc[0].parent
        if missing.size:
            shown = ", ".join(map(str, missing[:10].tolist())) + (
                " ..." if missing.size > 10 else ""
            )
            problems(
                f"{folder}: gap in the slice stack: missing slice(s) {shown} "
                f"between {numbers[0]} and {numbers[-1]}"
            )
            bad.add((case, day))
        sizes = sorted(set(zip(group["width"], group["height"], strict=True)))
        if len(sizes) > 1:
            problems(
                f"{folder}: mixed image sizes (WxH) "
                + ", ".join(f"{w}x{h}" for w, h in sizes)
            )
            bad.add((case, day))
        spacings = sorted(
            set(zip(group["spacing_row"], group["spacing_col"], strict=True))
        )
        if len(spacings) > 1:
            problems(f"{folder}: mixed pixel spacings (row, col mm) {spacings}")
            bad.add((case, day))
    keep = [
        (c, d) not in bad for c, d in zip(images["case"], images["day"], strict=True)
    ]
    return images[np.asarray(keep, dtype=bool)]


def _match_rows(
    images: pd.DataFrame,
    rows: pd.DataFrame,
    csv: Path,
    classes: Sequence[str],
    problems: _Problems,
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
    joined: pd.DataFrame, csv: Path, order: str, problems: _Problems
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


def _natural(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def _default_csv(data_dir: Path, csv_path, images_subdir: str) -> Path | None:
    if csv_path is not None:
        return Path(csv_path)
    default = data_dir / "train.csv"
    return default if images_subdir == "train" and default.is_file() else None


def read_kaggle_dataset(
    data_dir: str | Path,
    *,
    csv_path: str | Path | None = None,
    classes: Sequence[str] = CLASSES,
    order: str = "C",
    images_subdir: str = "train",
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
        RLE, gaps in a slice stack, mixed sizes inside a case-day.
    """
    data_dir = Path(data_dir)
    problems = _Problems(strict=True)
    images = _check_images(_scan(data_dir / images_subdir, problems), problems)
    csv = _default_csv(data_dir, csv_path, images_subdir)
    images = images.sort_values(["case", "day", "slice"]).reset_index(drop=True)
    masks_by_id: dict[str, NDArray[np.bool_]] = {}
    if csv is not None:
        rows = _read_csv(csv, classes, problems)
        joined = _match_rows(images, rows, csv, classes, problems)
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


def _write_csv(frame: pd.DataFrame, path: str | Path, columns: list[str]) -> Path:
    with atomic_path(path, suffix=".csv") as tmp:
        frame[columns].to_csv(tmp, index=False)
    return Path(path)


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


def write_train_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a ``train.csv`` (``id,class,segmentation``) atomically."""
    missing = {"id", "class", "segmentation"} - set(frame.columns)
    if missing:
        raise ValueError(
            f"train frame lacks column(s) {sorted(missing)}; got {list(frame.columns)}"
        )
    return _write_csv(frame, path, ["id", "class", "segmentation"])


def _counts(mapping: Mapping) -> str:
    return ", ".join(f"{k}: {v}" for k, v in mapping.items()) or "-"


@dataclass
class ValidationReport:
    """What :func:`validate_kaggle_dataset` found.

    Attributes
    ----------
    problems : list of str
        One line per problem, naming the file or CSV row.
    summary : dict
        ``data_dir``, ``csv``, ``n_cases``, ``n_case_days``, ``n_slices``, ``n_rows``,
        ``shapes`` ("HxW" -> slices), ``spacings`` ("row x col" mm -> slices) and
        ``empty_share`` (class -> share of that class's rows with an empty mask).
    """

    problems: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        """The summary, then one line per problem."""
        s = self.summary
        lines = [
            f"data: {s.get('data_dir')}  csv: {s.get('csv') or '-'}",
            f"cases: {s.get('n_cases', 0)}  case-days: {s.get('n_case_days', 0)}  "
            f"slices: {s.get('n_slices', 0)}  csv rows: {s.get('n_rows', 0)}",
            f"shapes (HxW: slices): {_counts(s.get('shapes', {}))}",
            f"spacings (row x col mm: slices): {_counts(s.get('spacings', {}))}",
        ]
        if s.get("empty_share"):
            lines.append(
                "empty masks: "
                + ", ".join(f"{c} {v:.1%}" for c, v in s["empty_share"].items())
            )
        lines.append(f"problems: {len(self.problems)}")
        lines.extend(self.problems)
        return "\n".join(lines)


def validate_kaggle_dataset(
    data_dir: str | Path,
    *,
    csv_path: str | Path | None = None,
    classes: Sequence[str] = CLASSES,
    order: str = "C",
    images_subdir: str = "train",
) -> ValidationReport:
    """Check a Kaggle-layout dataset's integrity, collecting every problem.

    Modelled on nnU-Net's dataset integrity check: every CSV row has an image and every
    image its rows, image sizes match their names, RLE is well formed and in bounds,
    (id, class) rows are unique, stacks have no gaps, images are 16-bit and not
    constant.

    Parameters
    ----------
    data_dir, csv_path, classes, order, images_subdir
        As in :func:`read_kaggle_dataset`.

    Returns
    -------
    ValidationReport
        ``problems`` (one line each) and ``summary``; images are read one at a time and
        not kept, so whole datasets fit in memory.
    """
    data_dir = Path(data_dir)
    problems = _Problems(strict=False)
    images = _scan(data_dir / images_subdir, problems)
    _check_images(images, problems)
    csv = _default_csv(data_dir, csv_path, images_subdir)
    rows = None
    if csv is not None:
        rows = _read_csv(csv, classes, problems)
    for path, w, h in zip(
        images["path"], images["width"], images["height"], strict=True
    ):
        with problems.catch():
            read_kaggle_png(path, expected_shape=(h, w))
    empty_share = {}
    if rows is not None:
        joined = _match_rows(images, rows, csv, classes, problems)
        for _ in _decode(joined, csv, order, problems):
            pass
        empty = rows["segmentation"].str.strip() == ""
        empty_share = {
            c: float(empty[rows["class"] == c].mean())
            for c in classes
            if (rows["class"] == c).any()
        }
    summary = {
        "data_dir": str(data_dir),
        "csv": None if csv is None else str(csv),
        "n_cases": int(images["case"].nunique()),
        "n_case_days": int(images.groupby(["case", "day"]).ngroups)
        if len(images)
        else 0,
        "n_slices": len(images),
        "n_rows": 0 if rows is None else len(rows),
        "shapes": dict(
            Counter(
                f"{h}x{w}"
                for h, w in zip(images["height"], images["width"], strict=True)
            )
        ),
        "spacings": dict(
            Counter(
                f"{r:.2f}x{c:.2f}"
                for r, c in zip(
                    images["spacing_row"], images["spacing_col"], strict=True
                )
            )
        ),
        "empty_share": empty_share,
    }
    return ValidationReport(problems=problems.items, summary=summary)
