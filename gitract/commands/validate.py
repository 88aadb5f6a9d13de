"""``gitract validate``: check a Kaggle-layout dataset, listing every problem.

Exit status as every command's (``gitract.cli``): 0 when the dataset has no problem
(warnings alone pass), 2 when it has any: the report on stdout lists each, and one
``error: DATA_DIR: N problem(s) (listed above; the first: ...)`` line goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: The exit status of a dataset with problems (a known problem, as ``gitract.cli``'s).
EXIT_PROBLEMS = 2


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data_dir",
        type=Path,
        metavar="DATA_DIR",
        help="Kaggle-layout dataset folder (train/ images, train.csv)",
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


def run(args: argparse.Namespace) -> int:
    """Print the summary, one line per sparse-stack warning and per problem; 2 (and one
    ``error:`` line on stderr) when there are problems, else 0 (warnings alone pass)."""
    from gitract.data.kaggle import validate_kaggle_dataset

    report = validate_kaggle_dataset(
        args.data_dir,
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
