"""Block-classifier table: {phantom, uwmgi_derived} x {33, 63} x {rf, lightgbm}.

Writes ``reports/blocks/results.{md,csv,json}`` (rewritten after every configuration,
atomically, so an interrupted run still leaves a consistent table of what finished).

Splits (by case, never by slice):

- ``phantom`` (synthetic, ``PhantomConfig()`` default via ``load_dataset("phantom")``):
  one fixed split (2 test cases, 1 validation case, the rest training), every
  ``--phantom-every``-th slice of each stack to keep the run short;
- ``uwmgi_derived`` (real, 24 slices of 7 cases): ``--folds`` leave-cases-out folds
  (``gitract.evaluation.case_folds``); in each fold one of the remaining cases tunes the
  thresholds and the others train. Means and standard deviations are over folds.

Usage::

    .venv/bin/python experiments/run_blocks.py [--data phantom uwmgi_derived]
        [--block-sizes 33 63] [--classifiers rf lightgbm] [--folds 4] [--out reports/blocks]
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from gitract.data.loaders import load_dataset
from gitract.evaluation import (
    BlockTrackConfig,
    case_folds,
    cross_validate_block_track,
    fixed_case_split,
)
from gitract.metrics import MetricConventions
from gitract.paths import REPO_ROOT
from gitract.utils.io import write_text_atomic

SYNTHETIC = {"phantom": True, "uwmgi_derived": False}


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _load(kind: str, every: int):
    stacks = load_dataset(kind)
    if every > 1:
        stacks = [s.subset(slice(None, None, every)) for s in stacks]
    return [s for s in stacks if s.n_slices]


def _folds(kind: str, cases: list[str], args) -> tuple[str, list]:
    if kind == "phantom":
        split = fixed_case_split(cases, n_test=2, n_val=1, random_state=args.seed)
        return "fixed split: 2 test cases, 1 validation case, rest training", [split]
    folds = case_folds(cases, n_folds=args.folds, n_val=1, random_state=args.seed)
    return (f"{args.folds}-fold leave-cases-out (each case tested once; in each fold 1 of the "
            f"other cases tunes thresholds, the rest train)"), folds


def _summary(long: pd.DataFrame) -> pd.DataFrame:
    keys = ["data", "synthetic", "classifier", "block_size", "class"]
    agg = long.groupby(keys, sort=False).agg(
        dice=("dice", "mean"), dice_std=("dice", lambda v: float(np.std(v))),
        hausdorff=("hausdorff", "mean"), hausdorff_std=("hausdorff", lambda v: float(np.std(v))),
        score=("score", "mean"), score_std=("score", lambda v: float(np.std(v))),
        n_folds=("fold", "nunique"), fit_seconds=("fit_seconds", "mean"),
        ms_per_slice=("ms_per_slice", "mean"), n_train_blocks=("n_train_blocks", "mean"),
        model_bytes=("model_bytes", "mean"),
    )
    return agg.reset_index()


def _markdown(summary: pd.DataFrame, meta: dict) -> str:
    lines = [
        "# Block classifiers (RF / LightGBM on block features): per-class results",
        "",
        f"Command: `{meta['command']}`  ",
        f"Run: {meta['started']} - {meta['finished']}, git {meta['git_sha'][:10]}, "
        f"{meta['machine']}.",
        "",
        f"Metric: {meta['conventions']}",
        "",
        "Thresholds and minimum component sizes are tuned per class on the validation "
        "case(s) of each fold only; the test cases never set them. Probability maps: "
        f"block grid step {meta['step']}, {meta['interpolation']} interpolation between "
        "block centres. `fit s`: classifier fit; `ms/slice`: features + prediction + "
        "interpolation of one map; `model MB`: pickled model. Timings were taken on a "
        "2-core machine shared with other jobs (load average 3-9): compare them only "
        "loosely, within a row group.",
        "",
    ]
    for kind, group in summary.groupby("data", sort=False):
        synthetic = bool(group["synthetic"].iloc[0])
        lines += [
            f"## {kind} — {'SYNTHETIC phantom data (not real MRI)' if synthetic else 'real UW-Madison slices'}",
            "",
            f"{meta['datasets'][kind]['description']}. Split: {meta['datasets'][kind]['split']}.",
            "",
            "| classifier | block | class | Dice | Hausdorff | score | folds | fit s | ms/slice | train blocks | model MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for _, r in group.iterrows():
            sd = r["n_folds"] > 1
            def cell(m, r=r, sd=sd):
                v = r[m]
                if pd.isna(v):
                    return "n/a"
                return f"{v:.3f} ± {r[m + '_std']:.3f}" if sd else f"{v:.3f}"
            name = f"**{r['class']}**" if r["class"] == "overall" else r["class"]
            lines.append(
                f"| {r['classifier']} | {r['block_size']} | {name} | {cell('dice')} | "
                f"{cell('hausdorff')} | {cell('score')} | {r['n_folds']} | {r['fit_seconds']:.1f} | "
                f"{r['ms_per_slice']:.0f} | {r['n_train_blocks']:.0f} | {r['model_bytes'] / 1e6:.1f} |"
            )
        lines.append("")
    lines += [
        "`overall` Dice/Hausdorff are the competition means over all (slice, class) rows and "
        "(case-day, class) volumes of the test cases; `± x` is the standard deviation over "
        "folds. Files: `results.csv` (one row per dataset, model, fold, class), "
        "`results.json` (configs, splits, thresholds, timings).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["phantom", "uwmgi_derived"],
                        choices=sorted(SYNTHETIC))
    parser.add_argument("--block-sizes", nargs="+", type=int, default=[33, 63])
    parser.add_argument("--classifiers", nargs="+", default=["rf", "lightgbm"],
                        choices=["rf", "lightgbm"])
    parser.add_argument("--folds", type=int, default=4, help="folds of the real data")
    parser.add_argument("--phantom-every", type=int, default=4,
                        help="keep every N-th phantom slice")
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--rf-trees", type=int, default=100)
    parser.add_argument("--lgbm-rounds", type=int, default=200)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports" / "blocks")
    parser.add_argument("--rebuild", action="store_true",
                        help="only rewrite results.md/summary.csv from results.csv/json")
    args = parser.parse_args(argv)
    if args.rebuild:
        long = pd.read_csv(args.out / "results.csv")
        meta = json.loads((args.out / "results.json").read_text())
        summary = _summary(long)
        write_text_atomic(args.out / "summary.csv", summary.to_csv(index=False))
        write_text_atomic(args.out / "results.md", _markdown(summary, meta))
        return 0

    command = "python experiments/run_blocks.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    conventions = MetricConventions()
    meta = {
        "command": command.strip(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_sha": _git_sha(), "machine": f"{platform.machine()}, python {platform.python_version()}",
        "conventions": conventions.describe(), "step": args.step, "interpolation": "linear",
        "datasets": {}, "runs": [],
    }
    frames = []
    for kind in args.data:
        every = args.phantom_every if kind == "phantom" else 1
        stacks = _load(kind, every)
        cases = sorted({s.case for s in stacks})
        split_text, folds = _folds(kind, cases, args)
        n_slices = sum(s.n_slices for s in stacks)
        shape = sorted({s.shape for s in stacks})
        meta["datasets"][kind] = {
            "synthetic": SYNTHETIC[kind], "split": split_text,
            "folds": [{"train": f[0], "val": f[1], "test": f[2]} for f in folds],
            "description": (f"{'SYNTHETIC phantom (gitract.data.phantom, PhantomConfig() default)' if SYNTHETIC[kind] else 'Real UW-Madison slices (shared/data/uwmgi_derived_512)'}: "
                            f"{len(cases)} cases, {len(stacks)} stacks, {n_slices} slices"
                            f"{f' (every {every}th slice)' if every > 1 else ''}, "
                            f"slice sizes {', '.join(f'{h}x{w}' for h, w in shape)}"),
        }
        for block_size in args.block_sizes:
            cache: dict = {}  # per-slice features shared by both classifiers and all folds
            for classifier in args.classifiers:
                params = ({"n_estimators": args.rf_trees} if classifier == "rf"
                          else {"n_estimators": args.lgbm_rounds})
                params["n_jobs"] = args.n_jobs
                config = BlockTrackConfig(classifier=classifier, block_size=block_size,
                                          step=args.step, random_state=args.seed,
                                          model_params=params)
                t0 = time.perf_counter()
                results, table = cross_validate_block_track(stacks, folds, config,
                                                            conventions=conventions, cache=cache)
                wall = time.perf_counter() - t0
                table.insert(0, "block_size", block_size)
                table.insert(0, "classifier", classifier)
                table.insert(0, "synthetic", SYNTHETIC[kind])
                table.insert(0, "data", kind)
                frames.append(table)
                meta["runs"].append({"data": kind, "wall_seconds": wall,
                                     "results": [r.summary() for r in results]})
                overall = table[table["class"] == "overall"]
                print(f"{kind} {classifier} {block_size}: overall Dice "
                      f"{overall['dice'].mean():.3f} ± {overall['dice'].std(ddof=0):.3f}, "
                      f"score {overall['score'].mean():.3f} ({wall:.0f} s)", flush=True)
                long = pd.concat(frames, ignore_index=True)
                summary = _summary(long)
                meta["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
                args.out.mkdir(parents=True, exist_ok=True)
                write_text_atomic(args.out / "results.csv", long.to_csv(index=False))
                write_text_atomic(args.out / "summary.csv", summary.to_csv(index=False))
                write_text_atomic(args.out / "results.md", _markdown(summary, meta))
                write_text_atomic(args.out / "results.json",
                                  json.dumps(meta, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
