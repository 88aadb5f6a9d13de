"""Integrity check of a Kaggle-layout dataset, collecting every problem."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitract.constants import CLASSES
from gitract.data.kaggle._csv import _decode, default_csv, match_rows, read_csv
from gitract.data.kaggle._files import _gap_warnings, check_images, scan_images
from gitract.data.kaggle._png import read_kaggle_png
from gitract.data.kaggle._problems import Problems


def _counts(mapping: Mapping) -> str:
    return ", ".join(f"{k}: {v}" for k, v in mapping.items()) or "-"


@dataclass
class ValidationReport:
    """What :func:`validate_kaggle_dataset` found.

    Attributes
    ----------
    problems : list of str
        One line per problem, naming the file or CSV row.
    warnings : list of str
        One line per thing skipped or not checked (not problems): an empty case or
        case-day folder, a broken symlink named like a slice, a missing ``train.csv`` (no
        mask checked), a sparse stack accepted with ``allow_gaps``.
    summary : dict
        ``data_dir``, ``csv``, ``n_cases``, ``n_case_days``, ``n_slices``, ``n_rows``,
        ``shapes`` ("HxW" -> slices), ``spacings`` ("row x col" mm -> slices),
        ``n_sparse_stacks`` (stacks with gaps, accepted with ``allow_gaps``) and
        ``empty_share`` (class -> share of that class's rows with an empty mask).
    """

    problems: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        """The summary, one ``warning:`` line per warning, then one line per problem."""
        s = self.summary
        lines = [
            f"data: {s.get('data_dir')}  " + (
                f"csv: {s.get('csv') or 'none found (masks not checked)'}"
                if s.get("kind", "kaggle") in ("kaggle", "phantom")
                else f"kind: {s['kind']} (images and masks read by its loader)"),
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
        lines.extend(f"warning: {w}" for w in self.warnings)
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
    allow_gaps: bool = False,
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
    allow_gaps : bool
        A gap in a slice stack is a warning (``warnings``), not a problem.

    Returns
    -------
    ValidationReport
        ``problems`` (one line each) and ``summary``; images are read one at a time and
        not kept, so whole datasets fit in memory.
    """
    data_dir = Path(data_dir)
    problems = Problems(strict=False)
    notes: list[str] = []
    images = scan_images(data_dir / images_subdir, problems, notes)
    check_images(images, problems, allow_gaps=allow_gaps)
    gaps = _gap_warnings(images) if allow_gaps and len(images) else []
    csv = default_csv(data_dir, csv_path, images_subdir)
    if csv is None and images_subdir == "train":
        notes.append(f"{data_dir / 'train.csv'}: not found: no mask was checked (--csv "
                     "names another RLE CSV)")
    elif csv is None:
        notes.append(f"{data_dir / images_subdir}: no RLE CSV given (--csv): no mask was "
                     "checked")
    rows = None
    if csv is not None:
        rows = read_csv(csv, classes, problems)
    for path, w, h in zip(
        images["path"], images["width"], images["height"], strict=True
    ):
        with problems.catch():
            read_kaggle_png(path, expected_shape=(h, w))
    empty_share = {}
    if rows is not None and (data_dir / images_subdir).is_dir():  # else one problem says so
        joined = match_rows(images, rows, csv, classes, problems)
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
    summary["n_sparse_stacks"] = len(gaps)
    return ValidationReport(problems=problems.items, summary=summary, warnings=notes + gaps)
