"""``gitract unet train|predict``: the 2.5D U-Net track through the comparison engine.

- ``train --data KIND [--path P] [--out RUN_DIR] [--epochs N] [--steps N] [--minutes M]
  [--device D] [--seed S] [--gpu-config] [--image-size N] [--architecture A] ...``: a
  one-track run (of kind ``--architecture``: unet, unetpp or deeplabv3plus) with
  training and validation cases and no test cases (``--n-val`` cases, seeded, choose the
  checkpoint and the per-class thresholds); the flags become the track's parameters
  (:class:`gitract.models.unet.UNetConfig` fields). The run folder (default
  ``runs/<data>-unet-train``) holds the model under ``steps/fold0/unet/model/`` and the
  thresholds in ``steps/fold0/unet/eval/metrics.json``; ``report.md`` lists them.
- ``predict RUN_DIR --data-dir D --out submission.csv``: an alias of ``gitract predict
  RUN_DIR``: a Kaggle submission (``id,class,predicted``) for a Kaggle-layout folder of
  scans (``D/test`` unless ``--images-subdir`` says otherwise; no ``train.csv`` needed),
  with the thresholds chosen at training time.

Held-out scores of the U-Net come from a comparison config (``gitract compare``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gitract.commands._engine import (
    add_data_arguments,
    add_run_arguments,
    print_training,
    run_track,
    track_config,
)
from gitract.commands.compare import device_name
from gitract.commands.predict import add_predict_arguments, predict

#: ``train`` flag -> :class:`UNetConfig` field.
_FLAGS = (("epochs", "max_epochs"), ("steps", "max_steps"), ("minutes", "max_minutes"),
          ("image_size", "image_size"), ("base_channels", "base_channels"),
          ("depth", "depth"), ("batch_size", "batch_size"), ("lr", "lr"),
          ("threads", "num_threads"))


TRAIN_EXAMPLES = """examples:
  gitract unet train --data kaggle --path /data/uwmgi --gpu-config --device cuda --out runs/unet
  gitract unet train --data phantom --steps 200 --image-size 128 --threads 1 \\
      --set tracks.unet.params.augment=false

--set KEY=VALUE overrides a key of the run's config (the track is tracks.unet); the run
folder resumes when the same command is run again.
"""

PREDICT_EXAMPLES = """example:
  gitract unet predict runs/unet --data-dir /data/uwmgi --out submission.csv --device cuda
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``unet`` subcommands."""
    parser.epilog = TRAIN_EXAMPLES
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    tr = sub.add_parser("train", help="train a 2.5D U-Net, tune its thresholds on "
                                      "validation cases, save both (a run folder for "
                                      "'gitract predict')", epilog=TRAIN_EXAMPLES)
    add_data_arguments(tr)
    add_run_arguments(tr, evaluate=False, track="unet")
    tr.add_argument("--epochs", type=int, default=None, help="epoch budget (default 40)")
    tr.add_argument("--steps", type=int, default=None,
                    help="budget in optimiser steps (reproducible on any machine)")
    tr.add_argument("--minutes", type=float, default=None,
                    help="wall-clock guard (alone: the budget, machine-dependent)")
    tr.add_argument("--device", type=device_name, default="auto",
                    help="auto, cpu, cuda, cuda:N or mps")
    tr.add_argument("--gpu-config", action="store_true",
                    help="start from the larger GPU config (base 32, depth 4, 320 px)")
    tr.add_argument("--architecture", choices=("unet", "unetpp", "deeplabv3plus"),
                    default="unet", help="the network (the track's kind; default unet)")
    tr.add_argument("--image-size", type=int, default=None, help="network grid side")
    tr.add_argument("--base-channels", type=int, default=None)
    tr.add_argument("--depth", type=int, default=None)
    tr.add_argument("--batch-size", type=int, default=None)
    tr.add_argument("--lr", type=float, default=None)
    tr.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (1 is much faster on a busy 2-core machine)")
    pr = sub.add_parser("predict", help="alias of 'gitract predict RUN_DIR': a Kaggle "
                                        "submission with a trained U-Net",
                        epilog=PREDICT_EXAMPLES)
    pr.add_argument("model_dir", type=Path, help="run folder written by 'unet train'")
    add_predict_arguments(pr, track_default="unet")


def track_params(args: argparse.Namespace) -> dict:
    """The ``unet`` track parameters: the GPU config's settings with ``--gpu-config``,
    then every flag given."""
    params: dict = {}
    if args.gpu_config:
        from gitract.models.unet import GPU_CONFIG, UNetConfig

        default, gpu = UNetConfig().to_dict(), GPU_CONFIG.to_dict()
        params.update({k: v for k, v in gpu.items() if v != default[k]})
    params["device"] = args.device
    for flag, field in _FLAGS:
        value = getattr(args, flag)
        if value is not None:
            params[field] = value
    if (args.minutes is not None or args.steps is not None) and args.epochs is None:
        params["max_epochs"] = None  # the step budget (or the time budget alone) limits it
    return params


def _train(args: argparse.Namespace) -> int:
    # The track keeps the name "unet" (its folder, `predict --track unet`) whatever the
    # network; the kind says which one it is.
    config = track_config(args, name="unet", kind=args.architecture, params=track_params(args),
                          evaluate=False)
    out, summary = run_track(args, config)
    print_training(out, summary, "unet")
    return 0


def _predict(args: argparse.Namespace) -> int:
    return predict(args, args.model_dir, args.track, args.images_subdir)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action; returns the exit status."""
    return {"train": _train, "predict": _predict}[args.action](args)
