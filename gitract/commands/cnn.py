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
    given_params,
    parse_params,
    print_evaluation,
    print_training,
    run_track,
    track_config,
    track_name,
)
from gitract.commands.blocks import TRACK_FLAGS
from gitract.commands.compare import device_name
from gitract.data.record import DataError
from gitract.probmaps import INTERPOLATIONS
from gitract.tracks import track_kind


#: ``--flag`` -> field of ``model_params`` (``BlockCNNClassifier``; None: its default).
MODEL_FLAGS = (("epochs", "max_epochs"), ("steps", "max_steps"), ("batch_size", "batch_size"),
               ("lr", "lr"), ("device", "device"), ("threads", "num_threads"))


def _add_track(p: argparse.ArgumentParser) -> None:
    p.add_argument("--block-size", type=int, default=None,
                   help="odd block size, 33 or 63 (default "
                        f"{track_kind('cnn').settings.block_size})")
    p.add_argument("--step", type=int, default=None, help="stride of the probability-map grid")
    p.add_argument("--n-per-class", type=int, default=None,
                   help="training blocks per organ and slice")
    p.add_argument("--background-cap", type=int, default=None,
                   help="background blocks per slice")
    p.add_argument("--interpolation", choices=INTERPOLATIONS, default=None)
    p.add_argument("--epochs", type=int, default=None, help="max epochs (early stopping)")
    p.add_argument("--dense", action="store_true",
                   help="dense training: every block centred in random crops of the training "
                        "slices (--steps, --param crop_size=96 ...) instead of sampled blocks")
    p.add_argument("--steps", type=int, default=None,
                   help="optimiser steps of dense training (default: --epochs passes)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--channels", default=None, help="conv channels, comma-separated "
                                                     "(e.g. 16,32,64)")
    p.add_argument("--device", type=device_name, default=None,
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
    """The ``BlockCNNClassifier`` parameters the command line gives (the flags given,
    then ``--param``)."""
    params = given_params(args, MODEL_FLAGS)
    if args.channels is not None:
        try:
            params["channels"] = [int(c) for c in str(args.channels).split(",") if c.strip()]
        except ValueError:
            raise DataError(f"--channels: expected comma-separated ints, got "
                            f"{args.channels!r}") from None
    if args.verbose:
        params["verbose"] = True
    params.update(parse_params(args.param))
    return params


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action; returns the exit status."""
    evaluate = args.action == "evaluate"
    name = track_name("cnn", "cnn", args)
    params = given_params(args, TRACK_FLAGS)
    if model_params(args):
        params["model_params"] = model_params(args)
    if args.dense:
        params["training"] = "dense"
    config = track_config(args, name=name, kind="cnn", params=params, evaluate=evaluate)
    out, summary = run_track(args, config)
    (print_evaluation if evaluate else print_training)(out, summary, name)
    return 0
