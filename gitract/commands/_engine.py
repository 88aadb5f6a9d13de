"""The track commands (``blocks``, ``cnn``, ``unet``) as thin callers of the engine.

Each builds a one-track comparison config from its flags (:func:`track_config`), runs
:func:`gitract.compare.run_comparison` into a run folder and prints a short table read
from the run's ``summary.json``. ``evaluate`` uses a split with test cases (one held-out
split or K-fold case cross-validation); ``train`` a split with training and validation
cases only, whose models and tuned thresholds ``gitract predict RUN_DIR`` applies.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
from pathlib import Path
from typing import Any

from gitract.commands.compare import add_force_argument, add_set_argument, positive_int
from gitract.compare import (
    check_run_folder,
    data_path,
    load_index,
    make_folds,
    run_comparison,
)
from gitract.config import (
    ConfigError,
    DataConfig,
    apply_sets,
    blame,
    check_devices,
    config_from_dict,
    parse_sets,
)
from gitract.data.loaders import DATASET_KINDS
from gitract.data.record import DataError

#: Where a run goes without ``--out`` (relative to the working folder; git ignores the
#: repository's ``runs/``).
RUNS_DIR = Path("runs")


# ----------------------------------------------------------------------------- flags
def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """``--data``, ``--path``, ``--every``."""
    p.add_argument("--data", required=True, choices=DATASET_KINDS, help="dataset kind")
    p.add_argument("--path", type=Path, default=None, help="dataset folder (default per kind)")
    p.add_argument("--every", type=int, default=1, metavar="N",
                   help="keep every N-th slice of each stack (data.slice_step; default 1)")


def add_run_arguments(p: argparse.ArgumentParser, *, evaluate: bool, track: str) -> None:
    """The split, seed, run-folder, ``--n-jobs`` and ``--set`` flags of ``evaluate`` (test
    cases) or ``train``."""
    if evaluate:
        p.add_argument("--folds", type=int, default=0,
                       help="K-fold case cross-validation, every case tested once (0: one "
                            "held-out split with --n-test test cases)")
        p.add_argument("--n-test", type=int, default=None,
                       help="test cases of the single split (default 30%% of the cases)")
    p.add_argument("--n-val", type=int, default=1,
                   help="validation cases that tune the thresholds (per fold)")
    p.add_argument("--seed", type=int, default=0, help="the run's single seed")
    kind = "" if evaluate else "-train"
    p.add_argument("--out", type=Path, default=None,
                   help=f"run folder (default {RUNS_DIR}/<data>-{track}{kind}); finished "
                        "steps found there are reused, changed settings recomputed")
    p.add_argument("--n-jobs", type=positive_int, default=1,
                   help="worker processes for the per-scan stages (default 1)")
    add_force_argument(p)
    add_set_argument(p)


def parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` flags (``--param``) as a dict; values parsed as JSON where they can."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DataError(f"--param: needs KEY=VALUE, got {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


# ------------------------------------------------------------------------ the config
def split_settings(args: argparse.Namespace, *, evaluate: bool) -> dict[str, Any]:
    """The config's ``split`` mapping from ``--folds`` / ``--n-test`` / ``--n-val``."""
    if not evaluate:
        return {"n_folds": 1, "n_test": 0, "test_fraction": None, "n_val": args.n_val}
    if args.folds > 1:
        return {"n_folds": args.folds, "cross_validate": True, "n_val": args.n_val}
    if args.n_test is not None:
        return {"n_folds": 1, "n_test": args.n_test, "test_fraction": None, "n_val": args.n_val}
    return {"n_folds": 1, "test_fraction": 0.3, "n_val": args.n_val}


def track_config(args: argparse.Namespace, *, name: str, kind: str, params: dict[str, Any],
                 evaluate: bool):
    """A one-track :class:`~gitract.config.ExperimentConfig` from the command line (the
    flags, then ``--set`` overrides; the track is ``tracks.<name>``).

    Raises
    ------
    DataError
        A flag the config or the track rejects, naming it.
    """
    raw = {
        "name": f"{args.data}-{name}" + ("" if evaluate else "-train"),
        "seed": args.seed,
        "data": {"kind": args.data, "path": None if args.path is None else str(args.path),
                 "slice_step": args.every},
        "split": split_settings(args, evaluate=evaluate),
        "tracks": [{"name": name, "kind": kind, "params": params}],
        "parallel": {"n_jobs": getattr(args, "n_jobs", 1)},
    }
    raw, paths = apply_sets(raw, parse_sets(getattr(args, "sets", [])))
    try:
        config = config_from_dict(raw, where="command line")
        check_devices(config, where="command line")  # a device this machine lacks
        return config
    except ConfigError as exc:
        exc = blame(exc, paths)
        flag = FLAGS.get(exc.key)
        if flag is not None and exc.source == "command line":
            raise ConfigError(flag, exc.key, exc.problem) from None
        raise exc from None


#: Config keys the track commands set from a flag (named in their errors).
FLAGS = {"data.path": "--path", "data.slice_step": "--every", "seed": "--seed",
         "split.n_val": "--n-val", "split.n_test": "--n-test", "split.n_folds": "--folds",
         "parallel.n_jobs": "--n-jobs", "tracks[0].params.device": "--device",
         "tracks[0].params.model_params.device": "--device"}


def run_track(args: argparse.Namespace, config, *, progress: bool | None = None
              ) -> tuple[Path, dict]:
    """Check the data and the split, run the engine into the run folder and return
    ``(run folder, summary.json)``."""
    out = args.out if args.out is not None else RUNS_DIR / config.name
    command = f"gitract {args.command} {getattr(args, 'action', '')}".strip()
    force = getattr(args, "force", False)
    check_run_folder(out, config, command=command, force=force)  # before reading data
    where = args.path if args.path is not None else f"--data {args.data}"
    try:
        index = load_index(config)
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None
    try:
        make_folds(config, index.cases())
    except ValueError as exc:
        raise DataError(f"split (--folds/--n-test/--n-val) of {len(index.cases())} cases: "
                        f"{exc}") from None
    args.run_dir_ = out  # where an interrupted run resumes (see gitract.cli)
    if progress is None:
        progress = not getattr(args, "no_progress", False)
    run_comparison(config, out, progress=progress, index=index, force=force, command=command)
    return Path(out), json.loads((Path(out) / "summary.json").read_text())


# ------------------------------------------------------------------------ the output
def _fmt(v: Any) -> str:
    return "  n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def format_scores(track: dict) -> str:
    """Per-class Dice, Hausdorff and score of a summary track (mean over folds), then the
    overall row with its spread over folds where there are several."""
    lines = [f"{'class':<12} {'dice':>13} {'hausdorff':>13} {'score':>13}"]
    for cls, stats in track["per_class"].items():
        lines.append(f"{cls:<12} " + " ".join(f"{_fmt(stats.get(m)):>13}"
                                              for m in ("dice", "hausdorff", "score")))
    std = track.get("std") or {}
    cells = [_fmt(track.get(m)) + (f" ± {_fmt(std[m])}" if std.get(m) is not None else "")
             for m in ("dice", "hausdorff", "score")]
    lines.append(f"{'overall':<12} " + " ".join(f"{c:>13}" for c in cells))
    return "\n".join(lines)


def format_thresholds(track: dict, fold: int = 0) -> str:
    """Per class: the tuned threshold, minimum component size and the validation numbers
    that chose them."""
    val = track["folds"][fold].get("validation")
    if not val:
        return "no validation case: thresholds 0.5, no component-size filter"
    lines = [f"{'class':<12} {'threshold':>9} {'min size':>8} {'val dice':>9} "
             f"{'val hd':>7} {'val score':>9}"]
    for cls, v in val.items():
        lines.append(f"{cls:<12} {v['threshold']:>9.2f} {v['min_size']:>8d} "
                     f"{_fmt(v['dice']):>9} {_fmt(v['hausdorff']):>7} {_fmt(v['score']):>9}")
    return "\n".join(lines)


def print_evaluation(out: Path, summary: dict, name: str) -> None:
    """What ``evaluate`` prints: data and folds, one line per fold, the table, the report."""
    track = summary["tracks"][name]
    split = summary["split"]
    print(f"{summary['dataset']['kind']}: {len(split['cases'])} cases; {name}, "
          f"{len(split['folds'])} fold(s) ({split['scheme']})")
    for k, f in enumerate(track["folds"]):
        thresholds = (f.get("tuning") or {}).get("thresholds")
        print(f"fold {k}: test {f.get('test_cases')}; fit {_fmt(f.get('fit_s'))} s, "
              f"{_fmt(f.get('ms_per_slice'))} ms/slice, thresholds {thresholds}")
    print(format_scores(track))
    print(summary.get("conventions") or "")
    print(f"report: {out / 'report.md'}")


def print_training(out: Path, summary: dict, name: str) -> None:
    """What ``train`` prints: the cases, fit time, tuned thresholds, how to predict."""
    track = summary["tracks"][name]
    fold = summary["split"]["folds"][0]
    print(f"trained {name} on {len(fold['train'])} case(s) {fold['train']} in "
          f"{_fmt(track.get('fit_s'))} s; validation case(s) {fold['val']}")
    print(format_thresholds(track))
    print(f"run folder: {out} (report: {out / 'report.md'})")
    print(f"predict: {predict_command(out, summary.get('dataset') or {})}")


def predict_command(out: Path, dataset: dict) -> str:
    """The ``gitract predict`` line that applies a training run to the scans it trained
    on (Kaggle layout: its folder and ``--images-subdir``), or to a Kaggle-layout
    ``DATA`` folder where it trained on another kind (which predict does not read)."""
    kind, options = dataset.get("kind"), dataset.get("options") or {}
    if kind in ("kaggle", "phantom"):
        path = data_path(DataConfig(kind=kind, path=dataset.get("path"),
                                    phantom=dataset.get("phantom") or {}))
        words = ["gitract", "predict", str(out), "--data-dir", str(path), "--images-subdir",
                 str(options.get("images_subdir", "train")), "--out", "submission.csv"]
        return shlex.join(words)
    return (shlex.join(["gitract", "predict", str(out)]) + " --data-dir DATA --images-subdir "
            f"test --out submission.csv (DATA: a Kaggle-layout folder; predict does not read "
            f"--data {kind})")
