"""``gitract compare CONFIG [--out DIR] [--seed N]``: every track, one split, one report."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config (e.g. experiments/configs/quick.yaml)")
    parser.add_argument("--out", default=None, help="run folder (default reports/<config name>)")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    import time

    from gitract.compare import run_comparison
    from gitract.compare._run import resolve_out_dir
    from gitract.config import load_config

    overrides = {} if args.seed is None else {"seed": args.seed}
    config = load_config(args.config, overrides=overrides)
    out = resolve_out_dir(config, args.out)
    start = time.perf_counter()
    run_comparison(config, out, progress=not args.no_progress, config_path=str(args.config))
    print(f"report: {out / 'report.md'} ({time.perf_counter() - start:.0f} s)")
    return 0
