"""``gitract unet train|predict``: the 2.5D U-Net track.

- ``train --data KIND [--path P] --out MODEL_DIR [--epochs N] [--steps N] [--minutes M]
  [--device D] [--seed S]``: holds out ``--n-val`` cases (seeded) for checkpoint choice
  and per-class threshold tuning, trains on the rest and writes ``MODEL_DIR/unet.pt``
  (weights, config, history), ``thresholds.json`` (the validation-tuned thresholds),
  ``config.json`` and ``history.json``.
- ``predict MODEL_DIR --data-dir D --out submission.csv``: Kaggle submission
  (``id,class,predicted``) for a Kaggle-layout folder of scans (no ``train.csv``
  needed), with the thresholds chosen at training time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

THRESHOLDS_FILE = "thresholds.json"

def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``unet`` subcommands."""
    from gitract.data.loaders import DATASET_KINDS

    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    tr = sub.add_parser("train", help="train a 2.5D U-Net and save it")
    tr.add_argument("--data", required=True, choices=DATASET_KINDS, help="dataset kind")
    tr.add_argument("--path", type=Path, default=None, help="dataset folder (default per kind)")
    tr.add_argument("--out", type=Path, required=True, help="model folder to write")
    tr.add_argument("--epochs", type=int, default=None, help="epoch budget (default 40)")
    tr.add_argument("--steps", type=int, default=None,
                    help="budget in optimiser steps (reproducible on any machine)")
    tr.add_argument("--minutes", type=float, default=None,
                    help="wall-clock guard (alone: the budget, machine-dependent)")
    tr.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    tr.add_argument("--seed", type=int, default=0, help="the single seed of the run")
    tr.add_argument("--n-val", type=int, default=1,
                    help="validation cases (checkpoint, thresholds)")
    tr.add_argument("--gpu-config", action="store_true",
                    help="start from the larger GPU config (base 32, depth 4, 320 px)")
    tr.add_argument("--image-size", type=int, default=None, help="network grid side")
    tr.add_argument("--base-channels", type=int, default=None)
    tr.add_argument("--depth", type=int, default=None)
    tr.add_argument("--batch-size", type=int, default=None)
    tr.add_argument("--lr", type=float, default=None)
    tr.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (1 is much faster on a busy 2-core machine)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bars")
    pr = sub.add_parser("predict", help="write a Kaggle submission with a saved U-Net")
    pr.add_argument("model_dir", type=Path, help="folder written by 'unet train'")
    pr.add_argument("--data-dir", type=Path, required=True, help="Kaggle-layout dataset folder")
    pr.add_argument("--images-subdir", default=None,
                    help="scans folder under DATA_DIR (default: test if present, else train)")
    pr.add_argument("--out", type=Path, required=True, help="submission CSV to write")
    pr.add_argument("--device", default=None, help="override the saved device")
    pr.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _config(args):
    from dataclasses import replace

    from gitract.models.unet import GPU_CONFIG, UNetConfig

    base = GPU_CONFIG if args.gpu_config else UNetConfig()
    over = {"device": args.device, "random_state": args.seed,
            "progress": not args.no_progress}
    for arg, field in (("epochs", "max_epochs"), ("steps", "max_steps"),
                       ("minutes", "max_minutes"),
                       ("image_size", "image_size"), ("base_channels", "base_channels"),
                       ("depth", "depth"), ("batch_size", "batch_size"), ("lr", "lr"),
                       ("threads", "num_threads")):
        value = getattr(args, arg)
        if value is not None:
            over[field] = value
    if (args.minutes is not None or args.steps is not None) and args.epochs is None:
        over["max_epochs"] = None  # the step budget (or the time budget alone) limits it
    return replace(base, **over)


def _train(args) -> int:

    from gitract.data.loaders import load_dataset
    from gitract.models.unet import UNetSegmenter
    from gitract.postprocessing import tune_thresholds
    from gitract.utils.io import write_text_atomic

    config = _config(args)
    stacks = [s for s in load_dataset(args.data, args.path) if s.n_slices]
    cases = sorted({s.case for s in stacks})
    if args.n_val >= len(cases):
        raise SystemExit(f"error: --n-val {args.n_val} leaves no training case of {len(cases)}")
    from gitract.data.splits import holdout_cases

    val = set(holdout_cases(cases, n_val=args.n_val, random_state=args.seed))
    train = [s for s in stacks if s.case not in val]
    val_stacks = [s for s in stacks if s.case in val]
    seg = UNetSegmenter(config).fit(train, val_stacks or None)
    tuning = None
    if val_stacks:
        # The model returns probabilities; thresholds are chosen here, on validation only.
        tuning = tune_thresholds(seg.predict_stacks(val_stacks), val_stacks)
    path = seg.save(args.out)
    if tuning is not None:
        write_text_atomic(args.out / THRESHOLDS_FILE,
                          json.dumps(tuning.to_dict(), indent=2) + "\n")
    write_text_atomic(args.out / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    write_text_atomic(args.out / "history.json",
                      json.dumps(seg.history_.to_dict(), indent=2) + "\n")
    h = seg.history_
    print(f"trained U-Net on {len(train)} stacks ({seg.n_train_slices_} slices) in "
          f"{seg.fit_seconds_:.1f} s on {h.device}: {len(h.epochs)} epochs, stopped by "
          f"{h.stopped}, best epoch {h.best_epoch} ({h.monitor} {h.best_value}); "
          f"validation cases {sorted(val)}; thresholds "
          f"{None if tuning is None else list(tuning.thresholds)}; saved to {path}")
    return 0


def _load_tuning(model_dir: Path, classes):
    """Validation thresholds saved beside the model (0.5 when it had no validation case;
    files of earlier versions kept them inside ``unet.pt``)."""
    from gitract.postprocessing import ThresholdTuning

    path = Path(model_dir) / THRESHOLDS_FILE
    if path.is_file():
        return ThresholdTuning.from_dict(json.loads(path.read_text()))
    from gitract.models.train_torch import load_checkpoint

    legacy = load_checkpoint(Path(model_dir) / "unet.pt").get("tuning")
    return ThresholdTuning.from_dict(legacy) if legacy else ThresholdTuning.fixed(classes)


def _predict(args) -> int:
    from dataclasses import replace

    from gitract.data.kaggle import read_kaggle_dataset, write_submission
    from gitract.data.record import DataError
    from gitract.models.unet import UNetSegmenter

    seg = UNetSegmenter.load(args.model_dir, device=args.device)
    if args.threads is not None:
        seg.config = replace(seg.config, num_threads=args.threads)
    subdir = args.images_subdir
    if subdir is None:
        subdir = "test" if (args.data_dir / "test").is_dir() else "train"
    stacks = read_kaggle_dataset(args.data_dir, images_subdir=subdir, classes=seg.classes_)
    if not stacks:
        raise DataError(f"{args.data_dir / subdir}: no scans found")
    tuning = _load_tuning(args.model_dir, seg.classes_)
    masks = {key: tuning.apply(p) for key, p in seg.predict_stacks(stacks).items()}
    out = write_submission(stacks, args.out, masks_by_key=masks)
    n = sum(s.n_slices for s in stacks)
    print(f"wrote {out}: {n} slices x {len(seg.classes_)} classes")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action; returns the exit status."""
    return {"train": _train, "predict": _predict}[args.action](args)
