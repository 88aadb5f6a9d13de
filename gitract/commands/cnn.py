"""``gitract cnn evaluate``: the CNN block classifier through the block-track evaluation.

Same data, splits, sampling, threshold tuning and scoring as ``gitract blocks evaluate``
(``gitract.evaluation.cross_validate_block_track``) with ``classifier="cnn"`` and raw block
pixels as features; the probability maps come from the dense pass
(``BlockCNNClassifier.predict_proba_dense``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``cnn`` subcommands."""
    from gitract.commands.blocks import _add_data

    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    ev = sub.add_parser("evaluate", help="train / tune / score on case-grouped splits")
    _add_data(ev)
    ev.add_argument("--block-size", type=int, default=33, help="odd block size (33 or 63)")
    ev.add_argument("--step", type=int, default=4, help="stride of the probability-map grid")
    ev.add_argument("--n-per-class", type=int, default=200, help="training blocks per organ and slice")
    ev.add_argument("--background-cap", type=int, default=400, help="background blocks per slice")
    ev.add_argument("--interpolation", choices=("nearest", "linear", "cubic"), default="linear")
    ev.add_argument("--epochs", type=int, default=20, help="max epochs (early stopping)")
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--lr", type=float, default=1e-3)
    ev.add_argument("--channels", default="16,32,64", help="conv channels, comma-separated")
    ev.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    ev.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ev.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="other BlockCNNClassifier parameter (JSON value)")
    ev.add_argument("--seed", type=int, default=0, help="seed of splits, sampling and model")
    ev.add_argument("--folds", type=int, default=0,
                    help="K leave-cases-out folds (0: one split with --n-test test cases)")
    ev.add_argument("--n-test", type=int, default=None, help="test cases of the single split")
    ev.add_argument("--n-val", type=int, default=1, help="validation cases (thresholds)")
    ev.add_argument("--out", type=Path, default=None, help="folder for result JSON/CSV")
    ev.add_argument("--verbose", action="store_true", help="epoch progress bars")


def model_params(args: argparse.Namespace) -> dict:
    """``BlockCNNClassifier`` parameters from the command line."""
    params = {
        "channels": [int(c) for c in str(args.channels).split(",") if c.strip()],
        "max_epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "device": args.device, "num_threads": args.threads, "verbose": args.verbose,
    }
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --param needs KEY=VALUE, got {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _evaluate(args: argparse.Namespace) -> int:
    from gitract import evaluation
    from gitract.commands.blocks import evaluate_and_print

    config = evaluation.BlockTrackConfig(
        classifier="cnn", features="raw", block_size=args.block_size, step=args.step,
        n_per_class=args.n_per_class, background_cap=args.background_cap,
        interpolation=args.interpolation, random_state=args.seed, model_params=model_params(args),
    )
    return evaluate_and_print(args, config)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action; returns the exit status."""
    return {"evaluate": _evaluate}[args.action](args)
