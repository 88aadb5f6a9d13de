"""Generate phantom scans and write them in the UW-Madison (Kaggle) layout."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from gitract.constants import CLASSES
from gitract.data.kaggle import write_kaggle_png, write_train_csv
from gitract.data.phantom._anatomy import Case, draw_case, draw_day
from gitract.data.phantom._config import PhantomConfig
from gitract.data.phantom._render import render
from gitract.data.record import SliceStack
from gitract.data.rle import rle_encode
from gitract.utils.outputs import OutputFolderError, check_output_folder

#: Bumped whenever the generator's output changes for a given config.
PHANTOM_VERSION = "1"

#: CSV rows ``(id, class, rle)`` of one or more scans.
_Rows = list[tuple[str, str, str]]


def _check_index(name: str, value: int, n: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not 0 <= value < n
    ):
        raise ValueError(f"{name} must be an int in [0, {n}), got {value!r}")
    return int(value)


def _generate(config: PhantomConfig, case: Case, case_index: int, day_index: int):
    day = draw_day(config, case_index, day_index)
    image, masks = render(
        case,
        day,
        n_slices=config.n_slices,
        empty=config.empty_slices(),
        extent=config.organ_extent_mm,
    )
    volume = np.clip(np.rint(image), 0, 65535).astype(np.uint16)
    return volume, masks


def generate_case_day(
    config: PhantomConfig, case_index: int, day_index: int
) -> tuple[NDArray[np.uint16], NDArray[np.bool_], tuple[float, float]]:
    """Generate one scan (one case on one day) in memory.

    Parameters
    ----------
    config : PhantomConfig
    case_index : int
        0-based patient index (written as ``case{case_index + 1}``).
    day_index : int
        0-based scan index of that patient (day number: :func:`phantom_day_numbers`).

    Returns
    -------
    volume : ndarray of shape (S, H, W), dtype uint16
        16-bit intensities, as written to the PNGs.
    masks : ndarray of shape (S, H, W, 3), dtype bool
        Channels in ``gitract.constants.CLASSES`` order (large, small bowel, stomach).
    spacing : (float, float)
        Pixel spacing (row_mm, col_mm).

    Examples
    --------
    >>> cfg = PhantomConfig(n_cases=1, n_days=1, n_slices=6, sizes=((96, 80),))
    >>> volume, masks, spacing = generate_case_day(cfg, 0, 0)
    >>> volume.shape, volume.dtype.name, masks.shape
    ((6, 80, 96), 'uint16', (6, 80, 96, 3))
    """
    case_index = _check_index("case_index", case_index, config.n_cases)
    day_index = _check_index("day_index", day_index, config.n_days)
    case = draw_case(config, case_index)
    volume, masks = _generate(config, case, case_index, day_index)
    return volume, masks, (case.spacing, case.spacing)


def phantom_day_numbers(config: PhantomConfig, case_index: int) -> tuple[int, ...]:
    """The day numbers (``dayM``) of one phantom patient's scans, increasing."""
    case_index = _check_index("case_index", case_index, config.n_cases)
    return draw_case(config, case_index).day_numbers


def _slice_thickness(config: PhantomConfig) -> float:
    m0, m1 = config.empty_slices()
    return config.organ_extent_mm / (config.n_slices - m0 - m1)


def make_phantom_case(
    config: PhantomConfig, case_index: int, day_index: int
) -> SliceStack:
    """One phantom scan as a :class:`~gitract.data.record.SliceStack` (no files).

    The stack equals what ``read_kaggle_dataset`` reads back from :func:`write_phantom`.
    """
    case_index = _check_index("case_index", case_index, config.n_cases)
    day_index = _check_index("day_index", day_index, config.n_days)
    case = draw_case(config, case_index)
    volume, masks = _generate(config, case, case_index, day_index)
    name, day = f"case{case_index + 1}", f"day{case.day_numbers[day_index]}"
    numbers = tuple(range(1, config.n_slices + 1))
    return SliceStack(
        image=volume.astype(np.float32),
        masks=masks,
        classes=CLASSES,
        spacing=(case.spacing, case.spacing),
        ids=tuple(f"{name}_{day}_slice_{k:04d}" for k in numbers),
        case=name,
        day=day,
        slice_numbers=numbers,
        source=None,
        slice_thickness=_slice_thickness(config),
        meta={"source": "phantom", "phantom_version": PHANTOM_VERSION},
    )


def _png_writer():
    return write_kaggle_png


def _csv_writer():
    return write_train_csv


#: What the phantom writes at the top of its folder: the only entries ``overwrite``
#: replaces.
PHANTOM_ENTRIES = ("phantom.json", "train", "train.csv")

_GENERATOR = "gitract.data.phantom"


def is_phantom_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a phantom this module wrote (its ``phantom.json`` says so)."""
    try:
        info = json.loads((Path(folder) / "phantom.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("generator") == _GENERATOR


def write_phantom(
    out_dir: str | os.PathLike,
    config: PhantomConfig | None = None,
    *,
    overwrite: bool = False,
    force: bool = False,
    n_jobs: int = 1,
) -> Path:
    """Write the phantom in the UW-Madison layout; returns ``out_dir``.

    Writes ``out_dir/train.csv`` (``id,class,segmentation``: one row per slice and
    class, row-major RLE or empty), the 16-bit grayscale
    ``out_dir/train/caseN/caseN_dayM/scans/slice_NNNN_W_H_PW_PH.png`` and
    ``out_dir/phantom.json`` (the config). The dataset is built in a temporary folder
    next to ``out_dir`` and moved into place entry by entry, so ``out_dir`` holds the
    whole phantom or what it held before. Only these three entries are ever replaced:
    other files in ``out_dir`` are kept.

    Parameters
    ----------
    out_dir : path
        Folder to write: new, empty, or holding a phantom written here before.
    config : PhantomConfig, optional
        What to generate; default ``PhantomConfig()``.
    overwrite : bool
        Replace the phantom that ``out_dir`` already holds.
    force : bool
        Write into a folder that holds files of something else (its ``train.csv``,
        ``train/`` and ``phantom.json``, where present, are replaced).
    n_jobs : int
        Worker processes (joblib; one task per case, ``-1`` for every core). The files
        are byte-identical whatever ``n_jobs``: every case draws its own random streams
        from ``config.seed`` and its index, and the CSV rows are joined in case order.

    Returns
    -------
    Path

    Raises
    ------
    OutputFolderError
        When ``out_dir`` (or a component of it) is a file, when it holds a phantom and
        ``overwrite`` is False, or files of something else and ``force`` is False.
    ValueError
        When ``n_jobs`` is not a non-zero int.
    """
    config = PhantomConfig() if config is None else config
    if (
        isinstance(n_jobs, bool)
        or not isinstance(n_jobs, (int, np.integer))
        or n_jobs == 0
    ):
        raise ValueError(f"n_jobs must be a non-zero int, got {n_jobs!r}")
    folder = check_output_folder(out_dir, kind="phantom", command="gitract phantom",
                                 force=force, written_before=is_phantom_folder,
                                 writes=PHANTOM_ENTRIES)
    out = folder.path
    if folder.status == "ours" and not (overwrite or force):
        raise OutputFolderError(
            f"{out}: holds a phantom already (phantom.json); pass --overwrite to replace it "
            "(only its train.csv, train/ and phantom.json)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _write_tree(tmp, config, n_jobs=int(n_jobs))
        if out.exists():
            _replace_entries(tmp, out)
        else:
            os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _replace_entries(tmp: Path, out: Path) -> None:
    """Move every entry of ``tmp`` into ``out``, replacing entries of the same name; on a
    failure, ``out`` gets its old entries back."""
    moved: list[tuple[Path, Path]] = []  # (old entry's temporary place, its place)
    placed: list[Path] = []
    try:
        for entry in sorted(tmp.iterdir()):
            target = out / entry.name
            if target.exists() or target.is_symlink():
                aside = tmp / f".old-{entry.name}"
                os.rename(target, aside)
                moved.append((aside, target))
            os.rename(entry, target)
            placed.append(target)
    except BaseException:
        for target in placed:
            with contextlib.suppress(OSError):
                shutil.rmtree(target) if target.is_dir() else target.unlink()
        for aside, target in moved:
            with contextlib.suppress(OSError):
                os.rename(aside, target)
        raise


def _case_scans(
    root: Path, config: PhantomConfig, case_index: int
) -> Iterator[tuple[list[Path], NDArray[np.uint16], _Rows]]:
    """Render one patient's scans one at a time: (PNG paths, volume, CSV rows) each.

    Creates each scan's folder; writes no file.
    """
    case = draw_case(config, case_index)
    name = f"case{case_index + 1}"
    s = f"{case.spacing:.2f}"
    for day_index, day_number in enumerate(case.day_numbers):
        volume, masks = _generate(config, case, case_index, day_index)
        scans = root / "train" / name / f"{name}_day{day_number}" / "scans"
        scans.mkdir(parents=True)
        paths, rows = [], []
        for k in range(config.n_slices):
            number = f"{k + 1:04d}"
            paths.append(
                scans / f"slice_{number}_{case.width}_{case.height}_{s}_{s}.png"
            )
            slice_id = f"{name}_day{day_number}_slice_{number}"
            rows.extend(
                (slice_id, cls, rle_encode(masks[k, :, :, c]))
                for c, cls in enumerate(CLASSES)
            )
        yield paths, volume, rows


def _write_case(root: Path, config: PhantomConfig, case_index: int) -> _Rows:
    """Write one patient's PNGs (a worker's task); returns its CSV rows."""
    write_png = _png_writer()
    rows: _Rows = []
    for paths, volume, scan_rows in _case_scans(root, config, case_index):
        for path, image in zip(paths, volume, strict=True):
            write_png(path, image)
        rows.extend(scan_rows)
    return rows


def _write_cases_in_process(root: Path, config: PhantomConfig) -> _Rows:
    write_png = _png_writer()
    rows: _Rows = []
    # PNG encoding (zlib, GIL released) overlaps the next scan's rendering
    with ThreadPoolExecutor(max_workers=1) as pool:
        previous: list = []
        for case_index in range(config.n_cases):
            for paths, volume, scan_rows in _case_scans(root, config, case_index):
                current = [
                    pool.submit(write_png, path, image)
                    for path, image in zip(paths, volume, strict=True)
                ]
                rows.extend(scan_rows)
                for future in previous:  # at most one scan queued; re-raises errors
                    future.result()
                previous = current
        for future in previous:
            future.result()
    return rows


def _write_tree(root: Path, config: PhantomConfig, *, n_jobs: int = 1) -> None:
    if n_jobs == 1 or config.n_cases == 1:
        rows = _write_cases_in_process(root, config)
    else:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=n_jobs)(
            delayed(_write_case)(root, config, case_index)
            for case_index in range(config.n_cases)
        )
        rows = [row for part in parts for row in part]
    frame = pd.DataFrame(rows, columns=["id", "class", "segmentation"])
    _csv_writer()(frame, root / "train.csv")
    info = {
        "generator": _GENERATOR,
        "phantom_version": PHANTOM_VERSION,
        "config": asdict(config),
        "slice_thickness_mm": _slice_thickness(config),
    }
    (root / "phantom.json").write_text(
        json.dumps(info, indent=2, sort_keys=True) + "\n"
    )
