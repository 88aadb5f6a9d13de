"""``gitract score``: score a Kaggle submission CSV against a Kaggle-layout dataset.

``--conventions NAME`` picks a named preset of the metric (``default`` or ``mlebench``;
see :mod:`gitract.metrics`); ``--dice-both-empty`` / ``--hausdorff-both-empty`` override
it. ``--allow-gaps`` scores sparse stacks (slices missing): one warning per such stack,
and the Hausdorff term uses the slice numbers as z coordinates, so the slices present
keep their true spacing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from gitract.data.kaggle import gap_warning, read_kaggle_dataset
from gitract.data.record import DataError
from gitract.metrics import MetricConventions, decode_submission, score_stacks

# The preset names (those of gitract.metrics.CONVENTIONS).
_PRESETS = ("default", "mlebench")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", required=True, type=Path,
                        help="Kaggle-layout dataset folder (train/ images, train.csv)")
    parser.add_argument("--pred", required=True, type=Path,
                        help="submission CSV with columns id,class,predicted (RLE)")
    parser.add_argument("--truth", type=Path, default=None,
                        help="truth CSV (default: DATA_DIR/train.csv)")
    parser.add_argument("--order", choices=("C", "F"), default="C",
                        help="RLE pixel order of both CSVs (default: C, row-major)")
    parser.add_argument("--conventions", choices=_PRESETS, default="default", metavar="NAME",
                        help="metric preset: default (per-class Hausdorff volumes) or "
                             "mlebench (classes OR-merged per case-day for Hausdorff, which is "
                             "1 when the prediction has >10x the truth's voxels); "
                             "default: default")
    parser.add_argument("--dice-both-empty", type=float, default=None, metavar="VALUE",
                        help="Dice of a (slice, class) row with both masks empty "
                             "(the preset's by default: nan, left out of the mean; 0 or 1)")
    parser.add_argument("--hausdorff-both-empty", type=float, default=None, metavar="VALUE",
                        help="Hausdorff of a volume with both masks empty "
                             "(the preset's by default: nan, left out of the mean)")
    parser.add_argument("--allow-gaps", action="store_true",
                        help="score sparse stacks (slices missing between the first and "
                             "last): a warning per stack; Hausdorff z from the slice numbers")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object on the last line")


def _fmt(value: float) -> str:
    return "   nan" if value is None or math.isnan(value) else f"{value:.4f}"


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    conventions = _conventions(args)
    truth = read_kaggle_dataset(args.data_dir, csv_path=args.truth, order=args.order,
                                allow_gaps=args.allow_gaps)
    if not truth:
        raise DataError(f"{args.data_dir}: no images found")
    unlabelled = [s.key for s in truth if s.masks is None]
    if unlabelled:
        raise DataError(
            f"{args.data_dir}: no truth masks for {unlabelled[0]!r} "
            f"(give --truth or put train.csv in the data folder)"
        )
    try:
        submission = pd.read_csv(args.pred, dtype=str, keep_default_na=False)
    except (FileNotFoundError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{args.pred}: cannot read the submission: {exc}") from None
    except UnicodeDecodeError as exc:  # e.g. saved as UTF-16 by a spreadsheet
        raise DataError(f"{args.pred}: cannot read the submission: not UTF-8 text "
                        f"({exc.reason} at byte {exc.start})") from None
    pred = decode_submission(submission, truth, order=args.order, where=str(args.pred))
    sparse = [w for s in truth if (w := gap_warning(str(s.source), s.slice_numbers))]
    for line in sparse:
        print(f"warning: {line}", file=sys.stderr)
    # Slice numbers as z equal array positions on stacks without gaps: the same numbers.
    result = score_stacks(truth, pred, conventions=conventions, hausdorff_z="slice_numbers")

    n_slices = sum(s.n_slices for s in truth)
    print(f"{len(truth)} case-days, {n_slices} slices. {conventions.describe()}")
    if sparse:
        print(f"sparse stacks: {len(sparse)} of {len(truth)} case-days have slices missing; "
              "scored on the slices present, Hausdorff z from the slice numbers")
    if conventions.hausdorff_merge_classes:
        print("per-class Hausdorff: none (one volume per case-day, classes merged); "
              "the overall row has it")
    print("rows: (slice, class) rows; empty: rows where both masks are empty")
    header = f"{'class':<14} {'dice':>7} {'hausdorff':>9} {'score':>7} {'rows':>7} {'empty':>6}"
    print(header)
    print("-" * len(header))
    for cls, stats in result.per_class.items():
        print(f"{cls:<14} {_fmt(stats['dice']):>7} {_fmt(stats['hausdorff']):>9} "
              f"{_fmt(stats['score']):>7} {stats['n_slices']:>7} {stats['n_empty']:>6}")
    print("-" * len(header))
    print(f"{'overall':<14} {_fmt(result.dice):>7} {_fmt(result.hausdorff):>9} "
          f"{_fmt(result.score):>7} {n_slices * len(result.per_class):>7} "
          f"{result.n_empty:>6}")
    if args.json:
        print(json.dumps({**result.to_dict(), "n_sparse_stacks": len(sparse)},
                         allow_nan=False))
    return 0


def _conventions(args: argparse.Namespace):
    """The preset named by ``--conventions``, with the both-empty values given."""
    from dataclasses import replace

    conventions = MetricConventions.preset(args.conventions)
    for flag, name in (("--dice-both-empty", "dice_both_empty"),
                       ("--hausdorff-both-empty", "hausdorff_both_empty")):
        value = getattr(args, name)
        if value is not None:
            try:
                conventions = replace(conventions, **{name: value})
            except ValueError as exc:
                raise DataError(f"{flag}: {exc}") from None
    return conventions
