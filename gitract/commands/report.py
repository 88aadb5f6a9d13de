"""``gitract report RUN_DIR``: rebuild a finished run's report without retraining."""

from __future__ import annotations

import argparse

from gitract.compare import build_report, read_json
from gitract.data.record import DataError

EXAMPLES = """examples:
  gitract report reports/quick            rebuild report.md and figures/ of a finished run
"""

#: What a finished run folder holds before its report is drawn.
RUN_FILES = ("config.json", "env.json", "splits.json", "summary.json")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished comparison run folder")
    parser.epilog = EXAMPLES


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run folder")
    for name in RUN_FILES:  # a half-finished run names what it lacks
        data = read_json(run_dir / name)
        if not isinstance(data, dict):
            raise DataError(f"{run_dir / name}: expected a JSON object")
    summary = read_json(run_dir / "summary.json")
    for key in ("tracks", "split", "dataset"):
        if key not in summary:
            raise DataError(f"{run_dir / 'summary.json'}: no {key!r}; written by an "
                            "unfinished or older run (rerun the comparison to complete it)")
    try:
        path = build_report(run_dir)
    except FileNotFoundError as exc:
        if exc.filename is None:  # the report's own message names the file
            raise DataError(str(exc)) from None
        raise DataError(f"{exc.filename}: missing; the run has not finished (rerun the "
                        "comparison to complete it)") from None
    print(f"report: {path}")
    return 0
