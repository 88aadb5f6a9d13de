"""``gitract predict RUN_DIR [--track TRACK] --data-dir D --out submission.csv``.

Uses the track's model trained in that run (fold 0) and the thresholds tuned there on the
validation cases, on a folder of Kaggle-layout scans it never saw. ``RUN_DIR`` is a
comparison run (``gitract compare``, ``gitract blocks evaluate``) or a training run
(``gitract blocks train``, ``gitract unet train``); ``--track`` may be left out when the
run has one track.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gitract.commands.compare import device_name, positive_int
from gitract.compare import predict_submission
from gitract.data.record import DataError
from gitract.models import device_problem
from gitract.utils.progress import progress_bars

#: The scans folder under ``--data-dir`` that every predict command reads by default.
IMAGES_SUBDIR = "test"

EXAMPLES = """examples:
  gitract predict reports/quick --track rf-33 --data-dir /data/uwmgi --out submission.csv
  gitract predict runs/kaggle-unet-train --data-dir /data/uwmgi --images-subdir train \\
      --out train_predictions.csv --device cuda

Scans are read from DATA_DIR/test unless --images-subdir names another folder (the Kaggle
download holds train/ only: pass --images-subdir train to predict those scans).
"""


def add_images_subdir(parser: argparse.ArgumentParser) -> None:
    """``--images-subdir`` with the same default in every predict command."""
    parser.add_argument("--images-subdir", default=IMAGES_SUBDIR,
                        help=f"scans folder under the data folder (default: {IMAGES_SUBDIR})")


def add_predict_arguments(parser: argparse.ArgumentParser, *,
                          track_default: str | None = None) -> None:
    """Every option of ``gitract predict`` but the run folder, shared with its aliases
    (``gitract blocks predict --model DIR``, ``gitract unet predict DIR``)."""
    parser.add_argument("--track", default=track_default,
                        help="track name, e.g. rf-33, cnn-63, unet (default: "
                             + (track_default or "the run's only track") + ")")
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="Kaggle-layout folder of scans")
    add_images_subdir(parser)
    parser.add_argument("--fold", type=int, default=0,
                        help="the fold whose trained model and thresholds predict (a "
                             "cross-validated run has folds 0..K-1; default 0)")
    parser.add_argument("--out", type=Path, required=True,
                        help="submission CSV to write (id,class,predicted)")
    add_runtime_arguments(parser)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished comparison or training run folder")
    add_predict_arguments(parser)
    parser.epilog = EXAMPLES


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--threads`` (where a deep track predicts: not saved settings)
    and ``--allow-gaps`` (sparse stacks)."""
    parser.add_argument("--device", type=device_name, default=None,
                        help="override the deep track's saved device (auto, cpu, cuda, mps)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads of a deep track (a positive int)")
    parser.add_argument("--force", action="store_true",
                        help="replace an --out file that is not a submission gitract wrote")
    parser.add_argument("--allow-gaps", action="store_true",
                        help="predict sparse stacks (slices missing between the first and "
                             "last): a warning per stack; the U-Net's 2.5D context comes "
                             "from the nearest slices present")


def check_device_flag(device: str | None) -> None:
    """``--device`` present on this machine (CUDA, MPS), before any model is loaded."""
    problem = None if device is None else device_problem(device)
    if problem is not None:
        raise DataError(f"--device: {problem}")


def predict(args: argparse.Namespace, run_dir, track: str | None, images_subdir: str) -> int:
    """Write the submission and say so (shared with the ``predict`` aliases)."""
    import sys

    check_device_flag(args.device)
    sparse: list[str] = []

    def warn(line: str) -> None:
        sparse.append(line)
        print(f"warning: {line}", file=sys.stderr)

    with progress_bars(not getattr(args, "no_progress", False)):
        path, n = predict_submission(run_dir, track, args.data_dir, args.out, fold=args.fold,
                                     images_subdir=images_subdir, device=args.device,
                                     num_threads=args.threads,
                                     allow_gaps=args.allow_gaps,
                                     warn=warn, force=bool(getattr(args, "force", False)))
    note = (f" ({len(sparse)} sparse stack(s): predicted on the slices present, 2.5D "
            "context from the nearest slices present)" if sparse else "")
    print(f"wrote {path}: {n} slices{note}")
    return 0


def run(args: argparse.Namespace) -> int:
    return predict(args, args.run_dir, args.track, args.images_subdir)
