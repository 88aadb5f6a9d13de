"""``gitract cnn evaluate|train``: the CNN block classifier through the comparison engine.

The same one-track run as ``gitract blocks evaluate|train`` with a track of kind ``cnn``
(raw block pixels into :class:`gitract.models.cnn.BlockCNNClassifier`; probability maps
from its dense pass). ``gitract predict RUN_DIR`` applies a trained run.
"""

from __future__ import annotations

import argparse

from gitract.commands._engine import (
    add_data_arguments,
    add_run_arguments,
    parse_params,
    print_evaluation,
    print_training,
    run_track,
    track_config,
)
from gitract.commands.compare import device_name
from gitract.data.record import DataError


def _add_track(p: argparse.ArgumentParser) -> None:
    p.add_argument("--block-size", type=int, default=33, help="odd block size (33 or 63)")
    p.add_argument("--step", type=int, default=4, help="stride of the probability-map grid")
    p.add_argument("--n-per-class", type=int, default=200,
                   help="training blocks per organ and slice")
    p.add_argument("--background-cap", type=int, default=400, help="background blocks per slice")
    p.add_argument("--interpolation", choices=("nearest", "linear", "cubic"), default="linear")
    p.add_argument("--epochs", type=int, default=20, help="max epochs (early stopping)")
    p.add_argument("--dense", action="store_true",
                   help="dense training: every block centred in random crops of the training "
                        "slices (--steps, --param crop_size=96 ...) instead of sampled blocks")
    p.add_argument("--steps", type=int, default=None,
                   help="optimiser steps of dense training (default: --epochs passes)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--channels", default="16,32,64", help="conv channels, comma-separated")
    p.add_argument("--device", type=device_name, default="auto",
                   help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="other BlockCNNClassifier parameter (JSON value)")
    p.add_argument("--verbose", action="store_true", help="epoch progress bars")


EVALUATE_EXAMPLES = """examples:
  gitract cnn evaluate --data kaggle --path /data/uwmgi --block-size 33 --epochs 10 --device cuda
  gitract cnn evaluate --data phantom --folds 3 --set tracks.cnn-33.params.step=8
  gitract cnn evaluate --data phantom --dense --steps 300 --param centre_features=true

--set KEY=VALUE overrides a key of the run's config (the track is tracks.cnn-<block size>);
the run folder resumes when the same command is run again.
"""

TRAIN_EXAMPLES = """examples:
  gitract cnn train --data kaggle --path /data/uwmgi --out runs/cnn --device cuda
  gitract predict runs/cnn --data-dir /data/uwmgi --images-subdir train --out sub.csv
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``cnn`` subcommands."""
    parser.epilog = EVALUATE_EXAMPLES
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    ev = sub.add_parser("evaluate", help="train / tune / score on case-grouped splits "
                                         "(a one-track comparison run)",
                        epilog=EVALUATE_EXAMPLES)
    add_data_arguments(ev)
    _add_track(ev)
    add_run_arguments(ev, evaluate=True, track="cnn-<block size>")
    tr = sub.add_parser("train", help="fit on all cases but the validation ones, tune the "
                                      "thresholds there; apply with 'gitract predict RUN_DIR'",
                        epilog=TRAIN_EXAMPLES)
    add_data_arguments(tr)
    _add_track(tr)
    add_run_arguments(tr, evaluate=False, track="cnn-<block size>")


def model_params(args: argparse.Namespace) -> dict:
    """``BlockCNNClassifier`` parameters from the command line."""
    try:
        channels = [int(c) for c in str(args.channels).split(",") if c.strip()]
    except ValueError:
        raise DataError(f"--channels: expected comma-separated ints, got {args.channels!r}") \
            from None
    params = {"channels": channels, "max_epochs": args.epochs, "batch_size": args.batch_size,
              "lr": args.lr, "device": args.device, "num_threads": args.threads,
              "verbose": args.verbose}
    if getattr(args, "steps", None) is not None:
        params["max_steps"] = args.steps
    params.update(parse_params(args.param))
    return params


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action; returns the exit status."""
    evaluate = args.action == "evaluate"
    name = f"cnn-{args.block_size}"
    params = {"block_size": args.block_size, "step": args.step,
              "n_per_class": args.n_per_class, "background_cap": args.background_cap,
              "interpolation": args.interpolation, "model_params": model_params(args)}
    if args.dense:
        params["training"] = "dense"
    config = track_config(args, name=name, kind="cnn", params=params, evaluate=evaluate)
    out, summary = run_track(args, config)
    (print_evaluation if evaluate else print_training)(out, summary, name)
    return 0
