"""``gitract validate``: check a dataset, listing every problem.

The Kaggle layout (the default ``--kind kaggle``, and the phantom written in it) is
checked file by file, collecting every problem; the other kinds of
:func:`gitract.data.loaders.load_dataset` are read by their loader, which stops at the
first problem, and summarised.

Exit status as every command's (``gitract.cli``): 0 when the dataset has no problem
(warnings alone pass), 2 when it has any: the report on stdout lists each, and one
``error: DATA_DIR: N problem(s) (listed above; the first: ...)`` line goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from gitract.data.kaggle import ValidationReport, validate_kaggle_dataset
from gitract.data.loaders import DATASET_KINDS, load_dataset
from gitract.data.record import DataError
from gitract.utils.io import file_in_the_way

#: Kinds checked file by file (the phantom is written in the Kaggle layout).
KAGGLE_KINDS = ("kaggle", "phantom")

#: The exit status of a dataset with problems (a known problem, as ``gitract.cli``'s).
EXIT_PROBLEMS = 2


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data_dir",
        type=Path,
        metavar="DATA_DIR",
        help="dataset folder: Kaggle layout (train/ images, train.csv) unless --kind "
        "names another (a NIfTI image file for --kind nifti)",
    )
    parser.add_argument(
        "--kind",
        choices=DATASET_KINDS,
        default="kaggle",
        help="dataset kind (default: kaggle); "
        + ", ".join(DATASET_KINDS)
        + " (pairs: DATA_DIR/images and DATA_DIR/masks)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a loader option of the other kinds (YAML value), e.g. --kind pairs --option "
        "'classes=[stomach]' --option 'label_values={stomach: 1}'",
    )
    parser.add_argument(
        "--csv",
        type=Path,
        default=None,
        help="RLE CSV id,class,segmentation (default: DATA_DIR/train.csv when present)",
    )
    parser.add_argument(
        "--order",
        choices=("C", "F"),
        default="C",
        help="RLE pixel order (default: C, row-major)",
    )
    parser.add_argument(
        "--images-subdir",
        default="train",
        help="folder of the scans under DATA_DIR (default: train)",
    )
    parser.add_argument(
        "--allow-gaps",
        action="store_true",
        help="accept sparse stacks (slices missing between the first and last): "
        "one warning line per stack instead of a problem",
    )


def not_kaggle_hint(data_dir: Path) -> str:
    """Words for a folder with no Kaggle images folder: what it holds and which
    ``--kind`` reads it."""
    if (data_dir / "images").is_dir() and (data_dir / "masks").is_dir():
        guess = "it holds images/ and masks/ (image/mask pairs?): try --kind pairs (or " \
                "uwmgi_derived)"
    elif any(data_dir.glob("*.nii*")):
        guess = "it holds NIfTI files: try --kind nifti with the image file"
    else:
        guess = "another layout? --kind names it"
    return (f"not the Kaggle layout ({data_dir}/train/caseN/caseN_dayM/scans/*.png); {guess} "
            f"(kinds: {', '.join(DATASET_KINDS)})")


def parse_options(items: list[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` items as loader keyword arguments (values read as YAML)."""
    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise DataError(f"--option: expected KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DataError(f"--option: {key}: invalid YAML value {text!r}") from exc
    return options


def validate_loaded(kind: str, path: Path, options: dict[str, Any]) -> ValidationReport:
    """Read a dataset of another kind with its loader (which stops at the first
    problem) and summarise it."""
    summary: dict[str, Any] = {"data_dir": str(path), "kind": kind}
    try:
        stacks = load_dataset(kind, path, **options)
    except (DataError, ValueError) as exc:
        return ValidationReport(problems=[" ".join(str(exc).split())], summary=summary)
    except TypeError as exc:  # a loader option missing or unknown
        if "argument" not in str(exc):
            raise
        problem = f"--kind {kind}: {exc} (loader options are given as --option KEY=VALUE)"
        return ValidationReport(problems=[problem], summary=summary)
    summary.update(
        n_cases=len({s.case for s in stacks}),
        n_case_days=len(stacks),
        n_slices=sum(s.n_slices for s in stacks),
        shapes=dict(Counter(f"{s.shape[0]}x{s.shape[1]}" for s in stacks for _ in s.ids)),
        spacings=dict(Counter(f"{s.spacing[0]:.2f}x{s.spacing[1]:.2f}"
                              for s in stacks for _ in s.ids)),
    )
    return ValidationReport(summary=summary)


def run(args: argparse.Namespace) -> int:
    """Print the summary, one line per warning and per problem; 2 (and one ``error:``
    line on stderr) when there are problems, else 0 (warnings alone pass)."""
    data_dir = args.data_dir
    if args.kind not in KAGGLE_KINDS:
        report = validate_loaded(args.kind, data_dir, parse_options(args.option))
    elif args.option:
        raise DataError(f"--option: only the other kinds take loader options, not --kind "
                        f"{args.kind}")
    elif not data_dir.is_dir():
        blocker = file_in_the_way(data_dir)
        problem = (f"{blocker}: is a file, not a folder" if blocker is not None
                   else f"{data_dir}: dataset folder does not exist")
        report = ValidationReport(problems=[problem], summary={"data_dir": str(data_dir)})
    elif not (data_dir / args.images_subdir).exists():
        images = data_dir / args.images_subdir
        report = ValidationReport(
            problems=[f"{images}: images folder does not exist: {not_kaggle_hint(data_dir)}"],
            summary={"data_dir": str(data_dir)})
    else:
        report = validate_kaggle_dataset(
            data_dir,
            csv_path=args.csv,
            order=args.order,
            images_subdir=args.images_subdir,
            allow_gaps=args.allow_gaps,
        )
    print(report.format())
    if not report.problems:
        return 0
    n = len(report.problems)
    print(f"error: {args.data_dir}: {n} problem{'s' if n != 1 else ''} (listed above; the "
          f"first: {' '.join(report.problems[0].split())})", file=sys.stderr)
    return EXIT_PROBLEMS
