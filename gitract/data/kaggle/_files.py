"""Kaggle-layout file names and folders: listing the slice PNGs by their paths."""

from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from gitract.data.kaggle._problems import Problems
from gitract.utils.io import file_in_the_way

_LOG = logging.getLogger("gitract.data.kaggle")

_NUM = r"(\d+(?:\.\d+)?)"
_NAME_RE = re.compile(rf"^slice_(\d+)_(\d+)_(\d+)_{_NUM}_{_NUM}\.png$")
_FOLDER_RE = re.compile(r"^(case\d+)_(day\d+)$")

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


def scan_images(root: Path, problems: Problems, notes: list[str] | None = None
                ) -> pd.DataFrame:
    """The slice table of an images folder; a file where a folder belongs is a problem,
    an empty case or case-day folder and a broken (or looping) symlink named like a slice
    are skipped with a note: appended to ``notes``, or logged as warnings when None."""
    if not root.is_dir():
        blocker = file_in_the_way(root)
        if blocker is not None:
            what = "the images folder" if blocker == root else f"on the way to {root}"
            problems(f"{blocker}: is a file, not a folder ({what})")
        else:
            problems(f"{root}: images folder does not exist")
        return pd.DataFrame(columns=_IMAGE_COLUMNS)
    found: list[str] = []
    candidates = [p for p in set(root.rglob("*.png")) | set(root.glob("*/*/scans/*"))
                  if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    files = set()
    for path in candidates:
        if path.is_file():
            files.add(path)
        elif path.is_symlink():
            found.append(f"{path}: {_bad_link(path)}, skipped")
    _check_folders(root, {p.relative_to(root).parts[:2] for p in candidates}, problems, found)
    for line in sorted(found, key=_natural):
        if notes is None:
            _LOG.warning("%s", line)
        else:
            notes.append(line)
    records = []
    for path in sorted(files):
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


def _bad_link(path: Path) -> str:
    """Words for a symlink that leads to no file."""
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
    return f"broken symlink (to {os.readlink(path)})"


def _check_folders(root: Path, used: set[tuple[str, ...]], problems: Problems,
                   notes: list[str]) -> None:
    """A case, case-day or ``scans`` entry that is a file is a problem; a case folder
    without case-day folders, or a case-day folder, with nothing in ``used`` (the first two
    parts of each file's path under ``root``) a note."""
    cases = {u[0] for u in used}
    for case in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if not case.is_dir():
            if re.match(r"^case\d+$", case.name):
                problems(f"{case}: is a file, not a folder (a case folder)")
            continue
        entries = sorted(p for p in case.iterdir() if not p.name.startswith("."))
        if case.name not in cases and not any(p.is_dir() or _FOLDER_RE.match(p.name)
                                              for p in entries):
            notes.append(f"{case}: empty case folder (no slice image in it), skipped")
            continue
        for day in entries:
            if not day.is_dir():
                if _FOLDER_RE.match(day.name):
                    problems(f"{day}: is a file, not a folder (a case-day folder)")
                continue
            scans = day / "scans"
            if scans.is_file():
                problems(f"{scans}: is a file, not a folder (the slice images of {day.name})")
            elif (case.name, day.name) not in used:
                notes.append(f"{day}: empty case-day folder (no slice image in it), skipped")


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
    return scan_images(Path(data_dir) / images_subdir, Problems(strict=True))


def missing_slices(slice_numbers) -> np.ndarray:
    """Slice numbers missing between the first and last of ``slice_numbers``.

    Examples
    --------
    >>> missing_slices([1, 2, 5, 7]).tolist()
    [3, 4, 6]
    """
    numbers = np.unique(np.asarray(slice_numbers, dtype=np.int64))
    if numbers.size == 0:
        return numbers
    return np.setdiff1d(np.arange(numbers[0], numbers[-1] + 1), numbers)


def gap_warning(where: str, slice_numbers) -> str | None:
    """One line saying that the stack ``where`` is sparse, or None when it has no gap.

    Examples
    --------
    >>> gap_warning("case1_day2", [1, 2, 5])
    'case1_day2: sparse stack: 2 slice(s) missing, 3 present between slice 1 and 5'
    >>> gap_warning("case1_day2", [1, 2, 3]) is None
    True
    """
    missing = missing_slices(slice_numbers)
    if not missing.size:
        return None
    numbers = np.unique(np.asarray(slice_numbers, dtype=np.int64))
    return (f"{where}: sparse stack: {missing.size} slice(s) missing, {numbers.size} present "
            f"between slice {numbers[0]} and {numbers[-1]}")


def check_images(
    images: pd.DataFrame, problems: Problems, *, allow_gaps: bool = False
) -> pd.DataFrame:
    """Duplicate slices, gaps (unless ``allow_gaps``) and mixed sizes; returns the images
    of sound case-days."""
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
        missing = missing_slices(numbers)
        folder = group["path"].iloc[0].parent
        if missing.size and not allow_gaps:
            shown = ", ".join(map(str, missing[:10].tolist())) + (
                " ..." if missing.size > 10 else ""
            )
            problems(
                f"{folder}: gap in the slice stack: missing slice(s) {shown} "
                f"between {numbers[0]} and {numbers[-1]} (--allow-gaps uses the slices "
                "present)"
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


def _gap_warnings(images: pd.DataFrame) -> list[str]:
    """One :func:`gap_warning` line per sparse case-day of an image table (natural order)."""
    lines = []
    groups = images.groupby(["case", "day"], sort=False)
    for case, day in sorted(groups.groups, key=lambda k: (_natural(k[0]), _natural(k[1]))):
        group = groups.get_group((case, day))
        line = gap_warning(str(group["path"].iloc[0].parent), group["slice"].to_numpy())
        if line is not None:
            lines.append(line)
    return lines


def _natural(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))
