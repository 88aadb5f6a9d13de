"""``gitract blocks train|predict|evaluate``: the block-classifier track (RF / LightGBM).

- ``evaluate --data KIND [--path P] --classifier rf|lightgbm --block-size 33|63``: trains
  on training cases, tunes thresholds on validation cases, scores held-out test cases
  (one fixed split, or ``--folds K`` leave-cases-out folds) and prints per-class Dice,
  Hausdorff and score.
- ``train ... --out MODEL_DIR``: fits on all cases but a validation share (used for the
  thresholds) and saves the track.
- ``predict --model MODEL_DIR --data-dir P --out submission.csv``: writes a Kaggle
  submission for a Kaggle-layout folder of scans.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def _add_data(p: argparse.ArgumentParser) -> None:
    from gitract.data.loaders import DATASET_KINDS

    p.add_argument("--data", required=True, choices=DATASET_KINDS, help="dataset kind")
    p.add_argument("--path", type=Path, default=None, help="dataset folder (default per kind)")
    p.add_argument("--every", type=int, default=1, metavar="N",
                   help="keep every N-th slice of each stack (faster runs; default 1)")


def _add_track(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classifier", choices=("rf", "lightgbm"), default="rf")
    p.add_argument("--block-size", type=int, default=33, help="odd block size (33 or 63)")
    p.add_argument("--step", type=int, default=4, help="stride of the prediction grid")
    p.add_argument("--features", choices=("filters", "raw"), default="filters")
    p.add_argument("--n-per-class", type=int, default=200, help="training blocks per organ and slice")
    p.add_argument("--background-cap", type=int, default=400, help="background blocks per slice")
    p.add_argument("--interpolation", choices=("nearest", "linear", "cubic"), default="linear")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="classifier parameter (JSON value), e.g. --param n_estimators=100")
    p.add_argument("--seed", type=int, default=0, help="seed of splits, sampling and model")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``blocks`` subcommands."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    ev = sub.add_parser("evaluate", help="train / tune / score on case-grouped splits")
    _add_data(ev)
    _add_track(ev)
    ev.add_argument("--folds", type=int, default=0,
                    help="K leave-cases-out folds (0: one split with --n-test test cases)")
    ev.add_argument("--n-test", type=int, default=None, help="test cases of the single split")
    ev.add_argument("--n-val", type=int, default=1, help="validation cases (thresholds)")
    ev.add_argument("--out", type=Path, default=None, help="folder for result JSON/CSV")
    tr = sub.add_parser("train", help="fit a track and save it")
    _add_data(tr)
    _add_track(tr)
    tr.add_argument("--n-val", type=int, default=1, help="validation cases (thresholds)")
    tr.add_argument("--out", type=Path, required=True, help="model folder to write")
    pr = sub.add_parser("predict", help="write a Kaggle submission with a saved track")
    pr.add_argument("--model", type=Path, required=True, help="folder written by 'train'")
    pr.add_argument("--data-dir", type=Path, required=True, help="Kaggle-layout dataset folder")
    pr.add_argument("--images-subdir", default="test", help="scans folder (default test)")
    pr.add_argument("--out", type=Path, required=True, help="submission CSV to write")


def _config(args):
    from gitract.evaluation import BlockTrackConfig

    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --param needs KEY=VALUE, got {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return BlockTrackConfig(
        classifier=args.classifier, block_size=args.block_size, step=args.step,
        features=args.features, n_per_class=args.n_per_class,
        background_cap=args.background_cap, interpolation=args.interpolation,
        random_state=args.seed, model_params=params,
    )


def load_stacks(kind: str, path: Path | None, every: int = 1):
    """Labelled stacks of a dataset, keeping every ``every``-th slice."""
    from gitract.data.loaders import load_dataset

    stacks = load_dataset(kind, path)
    if every > 1:
        stacks = [s.subset(slice(None, None, every)) for s in stacks]
    return [s for s in stacks if s.n_slices]


def _fmt(v) -> str:
    return "   nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def format_table(table) -> str:
    """Per-class mean (± std over folds) of dice, hausdorff and score, as text."""
    lines = [f"{'class':<12} {'dice':>13} {'hausdorff':>13} {'score':>13}"]
    for name, group in table.groupby("class", sort=False):
        cells = []
        for metric in ("dice", "hausdorff", "score"):
            values = group[metric].astype(float)
            mean, std = values.mean(), values.std(ddof=0)
            cells.append(f"{_fmt(mean)}" + (f" ± {_fmt(std)}" if len(values) > 1 else "        "))
        lines.append(f"{name:<12} " + " ".join(f"{c:>13}" for c in cells))
    return "\n".join(lines)


def _evaluate(args) -> int:
    return evaluate_and_print(args, _config(args))


def evaluate_and_print(args, config) -> int:
    """Cross-validate ``config`` on ``args``' data, print the table, write ``--out`` files.

    Shared by ``gitract blocks evaluate`` and ``gitract cnn evaluate``.
    """
    from gitract.evaluation import (
        case_folds,
        cross_validate_block_track,
        fixed_case_split,
    )
    from gitract.utils.io import write_text_atomic

    stacks = load_stacks(args.data, args.path, args.every)
    cases = sorted({s.case for s in stacks})
    if args.folds > 1:
        folds = case_folds(cases, n_folds=args.folds, n_val=args.n_val, random_state=args.seed)
    else:
        n_test = args.n_test if args.n_test is not None else max(1, round(0.3 * len(cases)))
        folds = [fixed_case_split(cases, n_test=n_test, n_val=args.n_val, random_state=args.seed)]
    results, table = cross_validate_block_track(stacks, folds, config)
    n_slices = sum(st.n_slices for st in stacks)
    print(f"{args.data}: {len(cases)} cases, {len(stacks)} stacks, {n_slices} slices; "
          f"{config.classifier} block {config.block_size} step {config.step}, "
          f"{len(folds)} fold(s)")
    for i, r in enumerate(results):
        print(f"fold {i}: train {r.train_cases} val {r.val_cases} test {r.test_cases}; "
              f"fit {r.fit_seconds:.1f} s, {r.n_train_blocks} blocks, "
              f"{r.ms_per_slice:.0f} ms/slice, thresholds {list(r.tuning.thresholds)}")
    print(format_table(table))
    print(results[0].score.conventions.describe())
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out / "per_fold.csv", table.to_csv(index=False))
        write_text_atomic(args.out / "results.json", json.dumps(
            [r.summary() for r in results], indent=2, default=str) + "\n")
        print(f"wrote {args.out / 'per_fold.csv'} and {args.out / 'results.json'}")
    return 0


def _train(args) -> int:

    from gitract.evaluation import save_block_track, train_block_track
    from gitract.postprocessing import tune_thresholds

    config = _config(args)
    stacks = load_stacks(args.data, args.path, args.every)
    cases = sorted({s.case for s in stacks})
    from gitract.data.splits import holdout_cases

    val = set(holdout_cases(cases, n_val=args.n_val, random_state=args.seed))
    train = [s for s in stacks if s.case not in val]
    val_stacks = [s for s in stacks if s.case in val]
    track = train_block_track(train, config)
    if val_stacks:
        track.tuning = tune_thresholds(track.predict_proba(val_stacks), val_stacks,
                                       grid=config.threshold_grid, min_sizes=config.min_sizes,
                                       hausdorff_max_side=config.hausdorff_max_side)
    save_block_track(track, args.out)
    tuning = track.tuning
    print(f"trained {config.classifier} block {config.block_size} on {len(train)} stacks "
          f"({track.n_train_blocks} blocks, fit {track.fit_seconds:.1f} s); "
          f"validation cases {sorted(val)}; thresholds "
          f"{None if tuning is None else list(tuning.thresholds)}; saved to {args.out}")
    return 0


def _predict(args) -> int:
    from gitract.data.kaggle import read_kaggle_dataset, write_submission
    from gitract.evaluation import load_block_track

    track = load_block_track(args.model)
    stacks = read_kaggle_dataset(args.data_dir, images_subdir=args.images_subdir,
                                 classes=track.classes)
    masks = track.predict_masks(stacks)
    out = write_submission(stacks, args.out, masks_by_key=masks)
    n = sum(s.n_slices for s in stacks)
    print(f"wrote {out}: {n} slices x {len(track.classes)} classes")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action; returns the exit status."""
    return {"evaluate": _evaluate, "train": _train, "predict": _predict}[args.action](args)
