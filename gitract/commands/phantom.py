"""``gitract phantom OUT_DIR``: write the synthetic phantom in the Kaggle layout."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from gitract.data.phantom import PhantomConfig, write_phantom


def _n_jobs(text: str) -> int:
    value = int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a non-zero int, got {text!r}")
    return value


def _at_least(low: int, what: str):
    """An argparse type: an int >= ``low`` (``what`` says which, in the message)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``phantom`` subcommand's arguments."""
    default = PhantomConfig()
    parser.add_argument(
        "out_dir", metavar="OUT_DIR", help="folder to create (Kaggle layout)"
    )
    parser.add_argument(
        "--cases", type=_at_least(1, "a positive int"), default=default.n_cases,
        help="number of patients"
    )
    parser.add_argument(
        "--days", type=_at_least(1, "a positive int"), default=default.n_days,
        help="scans per patient"
    )
    parser.add_argument(
        "--slices", type=_at_least(4, "an int >= 4"), default=default.n_slices,
        help="slices per scan (at least 4)"
    )
    parser.add_argument("--seed", type=_at_least(0, "an int >= 0"), default=default.seed,
                        help="generator seed")
    parser.add_argument(
        "--n-jobs",
        type=_n_jobs,
        default=1,
        help="worker processes, one case each (-1: every core); same bytes whatever N",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the phantom OUT_DIR already holds (only its train.csv, train/ and "
        "phantom.json; other files are kept)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into an OUT_DIR that holds other files (its train.csv, train/ and "
        "phantom.json, where present, are replaced; other files are kept)",
    )


def run(args: argparse.Namespace) -> int:
    """Write the phantom and print what was written; returns the exit status."""
    config = replace(
        PhantomConfig(),
        n_cases=args.cases,
        n_days=args.days,
        n_slices=args.slices,
        seed=args.seed,
    )
    start = time.perf_counter()
    out = write_phantom(
        args.out_dir, config, overwrite=args.overwrite, force=args.force, n_jobs=args.n_jobs
    )
    n_scans = config.n_cases * config.n_days
    print(
        f"wrote phantom to {out}: {config.n_cases} cases x {config.n_days} days x "
        f"{config.n_slices} slices = {n_scans * config.n_slices} PNGs, "
        f"{out / 'train.csv'} ({n_scans * config.n_slices * 3} rows), "
        f"seed {config.seed}, "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0
