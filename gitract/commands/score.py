"""``gitract score``: score a Kaggle submission CSV against a Kaggle-layout dataset."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", required=True, type=Path,
                        help="Kaggle-layout dataset folder (train/ images, train.csv)")
    parser.add_argument("--pred", required=True, type=Path,
                        help="submission CSV with columns id,class,predicted (RLE)")
    parser.add_argument("--truth", type=Path, default=None,
                        help="truth CSV (default: DATA_DIR/train.csv)")
    parser.add_argument("--order", choices=("C", "F"), default="C",
                        help="RLE pixel order of both CSVs (default: C, row-major)")
    parser.add_argument("--dice-both-empty", type=float, default=math.nan, metavar="VALUE",
                        help="Dice of a (slice, class) row with both masks empty "
                             "(default nan: left out of the mean; 0 or 1)")
    parser.add_argument("--hausdorff-both-empty", type=float, default=math.nan, metavar="VALUE",
                        help="Hausdorff of a (case-day, class) volume with both masks empty "
                             "(default nan: left out of the mean)")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object on the last line")


def _fmt(value: float) -> str:
    return "   nan" if value is None or math.isnan(value) else f"{value:.4f}"


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from gitract.data.kaggle import read_kaggle_dataset
    from gitract.data.record import DataError
    from gitract.metrics import MetricConventions, decode_submission, score_stacks

    truth = read_kaggle_dataset(args.data_dir, csv_path=args.truth, order=args.order)
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
    pred = decode_submission(submission, truth, order=args.order, where=str(args.pred))
    conventions = MetricConventions(
        dice_both_empty=args.dice_both_empty, hausdorff_both_empty=args.hausdorff_both_empty
    )
    result = score_stacks(truth, pred, conventions=conventions)

    n_slices = sum(s.n_slices for s in truth)
    print(f"{len(truth)} case-days, {n_slices} slices. {conventions.describe()}")
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
        print(json.dumps(result.to_dict(), allow_nan=False))
    return 0
