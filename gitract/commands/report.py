"""``gitract report RUN_DIR``: rebuild a finished run's report without retraining."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished comparison run folder")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gitract.compare import build_report

    try:
        path = build_report(Path(args.run_dir))
    except FileNotFoundError as exc:
        import sys

        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0
