"""``gitract blocks evaluate|train|predict``: the block-classifier track (RF / LightGBM)
through the comparison engine (:func:`gitract.compare.run_comparison`).

- ``evaluate --data KIND [--path P] --classifier rf|lightgbm --block-size 33|63``: a
  one-track run: trains on training cases, tunes thresholds on validation cases, scores
  held-out test cases (one split, or ``--folds K`` case cross-validation); prints per-class
  Dice, Hausdorff and score from the run's ``summary.json``; the run folder (``--out``,
  default ``runs/<data>-<classifier>-<block size>``) holds ``report.md`` and every table.
- ``train ... [--out RUN_DIR]``: a run with training and validation cases and no test
  cases: fits the track, tunes its thresholds on the validation cases and saves both.
- ``predict --model RUN_DIR --data-dir P --out submission.csv``: an alias of
  ``gitract predict RUN_DIR``: a Kaggle submission for a Kaggle-layout folder of scans.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gitract.commands._engine import (
    add_data_arguments,
    add_run_arguments,
    parse_params,
    print_evaluation,
    print_training,
    run_track,
    track_config,
)
from gitract.commands.predict import add_predict_arguments, predict


def _add_track(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classifier", choices=("rf", "lightgbm"), default="rf")
    p.add_argument("--block-size", type=int, default=33, help="odd block size (33 or 63)")
    p.add_argument("--step", type=int, default=4, help="stride of the prediction grid")
    p.add_argument("--features", choices=("filters", "raw"), default="filters")
    p.add_argument("--n-per-class", type=int, default=200,
                   help="training blocks per organ and slice")
    p.add_argument("--background-cap", type=int, default=400, help="background blocks per slice")
    p.add_argument("--interpolation", choices=("nearest", "linear", "cubic"), default="linear")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="classifier parameter (JSON value), e.g. --param n_estimators=100")


EVALUATE_EXAMPLES = """examples:
  gitract blocks evaluate --data kaggle --path /data/uwmgi --classifier lightgbm --folds 5
  gitract blocks evaluate --data phantom --block-size 63 --param n_estimators=50 \\
      --set tracks.rf-63.params.step=8 --n-jobs 2

--set KEY=VALUE overrides a key of the run's config (the track is tracks.<name>, named
<classifier>-<block size>); the run folder resumes when the same command is run again.
"""

TRAIN_EXAMPLES = """examples:
  gitract blocks train --data kaggle --path /data/uwmgi --classifier rf --out runs/rf
  gitract predict runs/rf --data-dir /data/uwmgi --images-subdir train --out sub.csv
"""

PREDICT_EXAMPLES = """example:
  gitract blocks predict --model runs/rf --data-dir /data/uwmgi --out submission.csv
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``blocks`` subcommands."""
    parser.epilog = EVALUATE_EXAMPLES
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    ev = sub.add_parser("evaluate", help="train / tune / score on case-grouped splits "
                                         "(a one-track comparison run)",
                        epilog=EVALUATE_EXAMPLES)
    add_data_arguments(ev)
    _add_track(ev)
    add_run_arguments(ev, evaluate=True, track="<classifier>-<block size>")
    tr = sub.add_parser("train", help="fit a track on all cases but the validation ones, "
                                      "tune its thresholds there and save both (a run "
                                      "folder for 'gitract predict')",
                        epilog=TRAIN_EXAMPLES)
    add_data_arguments(tr)
    _add_track(tr)
    add_run_arguments(tr, evaluate=False, track="<classifier>-<block size>")
    pr = sub.add_parser("predict", help="alias of 'gitract predict RUN_DIR': a Kaggle "
                                        "submission with a trained track",
                        epilog=PREDICT_EXAMPLES)
    pr.add_argument("--model", type=Path, required=True,
                    help="run folder written by 'blocks train' (or any comparison run)")
    add_predict_arguments(pr)


def track_params(args: argparse.Namespace) -> dict:
    """The ``blocks`` track parameters (:class:`gitract.evaluation.BlockTrackConfig`)."""
    return {"classifier": args.classifier, "block_size": args.block_size, "step": args.step,
            "features": args.features, "n_per_class": args.n_per_class,
            "background_cap": args.background_cap, "interpolation": args.interpolation,
            "model_params": parse_params(args.param)}


def _run(args: argparse.Namespace, *, evaluate: bool) -> int:
    name = f"{args.classifier}-{args.block_size}"
    config = track_config(args, name=name, kind="blocks", params=track_params(args),
                          evaluate=evaluate)
    out, summary = run_track(args, config)
    (print_evaluation if evaluate else print_training)(out, summary, name)
    return 0


def _predict(args: argparse.Namespace) -> int:
    return predict(args, args.model, args.track, args.images_subdir)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action; returns the exit status."""
    if args.action == "predict":
        return _predict(args)
    return _run(args, evaluate=args.action == "evaluate")
