"""``gitract predict RUN_DIR --track TRACK --data-dir D --out submission.csv``.

Uses the track's model trained in that run (fold 0) and the thresholds tuned there on the
validation cases, on a folder of Kaggle-layout scans it never saw.
"""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished comparison run folder")
    parser.add_argument("--track", required=True, help="track name, e.g. rf-33, cnn-63, unet")
    parser.add_argument("--data-dir", required=True, help="Kaggle-layout folder of scans")
    parser.add_argument("--images-subdir", default="test", help="scans folder (default: test)")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--out", required=True, help="submission CSV (id,class,predicted)")


def run(args: argparse.Namespace) -> int:
    from gitract.compare._predict import predict_submission

    path, n = predict_submission(args.run_dir, args.track, args.data_dir, args.out,
                                 fold=args.fold, images_subdir=args.images_subdir)
    print(f"wrote {path}: {n} slices")
    return 0
