"""Train a U-Net track (unet, unetpp or deeplabv3plus) alone on a config's first fold, timed.

The same data, split and track seed as ``gitract compare CONFIG`` (the phantom comes from
the cache), but no threshold tuning or report: a quick check of a training recipe.
Validation Dice is the hard Dice at 0.5 pooled per class over the validation slices
(``FitHistory.val_dice``); test Dice the same over the test slices. Pooled over pixels,
it is not the Dice of a comparison's report (a mean over slices and classes with tuned
thresholds, where a small organ at a stack's end or a false positive on an organ-free
slice weighs as much as a whole stomach): on the quick phantom's test cases the same
U-Net gives 0.71 pooled and 0.57 in ``reports/quick``.

Usage::

    python experiments/bench_unet.py experiments/configs/quick.yaml [--track unet]
    python experiments/bench_unet.py experiments/configs/real.yaml --track unetpp
        [--set max_steps=60 --set device=cuda ...] [--threads 1]
    torchrun --standalone --nproc_per_node N experiments/bench_unet.py CONFIG ...   # DDP

Prints the validation Dice per epoch and, as the last stdout line, one JSON object:
``device``, ``steps``, ``s_per_step``, ``steps_per_s``, ``best_val_dice``,
``last_val_dice``, ``test_dice``, ``fit_seconds``, ``architecture``, ``n_params``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import yaml


def _pooled_dice(seg, index, keys) -> float:
    """Hard Dice at 0.5 pooled over the slices of ``keys``, averaged over classes present."""
    inter = total = None
    for key in keys:
        stack = index.read(key)
        pred = seg.predict_proba_stack(stack) > 0.5
        truth = stack.masks
        i = np.logical_and(pred, truth).sum((0, 1, 2)).astype(float)
        t = pred.sum((0, 1, 2)) + truth.sum((0, 1, 2)).astype(float)
        inter = i if inter is None else inter + i
        total = t if total is None else total + t
    per_class = [2 * i / t for i, t in zip(inter, total, strict=True) if t > 0]
    return float(np.mean(per_class)) if per_class else float("nan")


def _parse(value: str):
    """YAML scalar, with ``6e-3`` read as a float (YAML 1.1 wants ``6.0e-3``)."""
    out = yaml.safe_load(value)
    if isinstance(out, str):
        try:
            return float(out)
        except ValueError:
            return out
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--track", default="unet", help="name of the unet, unetpp or deeplabv3plus track in CONFIG")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=YAML",
                        help="override one UNetConfig field (value parsed as YAML)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--no-test", action="store_true", help="skip the test-set Dice")
    args = parser.parse_args(argv)

    import torch

    from gitract.compare import load_index, make_folds
    from gitract.config import SEGMENTER_KINDS, load_config
    from gitract.models.train_torch import distributed_session
    from gitract.models.unet import UNetConfig, UNetSegmenter
    from gitract.utils import derive_seeds

    config = load_config(args.config)
    tracks = [t for t in config.tracks if t.name == args.track and t.kind in SEGMENTER_KINDS]
    if not tracks:
        parser.error(f"no unet, unetpp or deeplabv3plus track named {args.track!r} in "
                     f"{args.config}")
    params = {"architecture": tracks[0].kind, **tracks[0].params}
    for item in args.set:
        key, _, value = item.partition("=")
        params[key] = _parse(value)
    params.setdefault("num_threads", args.threads)
    unet_config = UNetConfig.from_dict({"random_state": derive_seeds(config.seed, 1)[0],
                                        "progress": False, **params})
    with distributed_session(unet_config.device) as (rank, n_proc):
        if n_proc > 1 and rank != 0:
            torch.distributed.barrier()  # rank 0 may be writing the phantom to the cache
        index = load_index(config)
        if n_proc > 1 and rank == 0:
            torch.distributed.barrier()
        _, folds = make_folds(config, index.cases())
        train_c, val_c, test_c = folds[0]
        t0 = time.perf_counter()
        seg = UNetSegmenter(unet_config).fit(
            [index.source(k) for k in index.keys_of(train_c)],
            [index.source(k) for k in index.keys_of(val_c)])
        fit_seconds = time.perf_counter() - t0
    if rank != 0:
        return 0
    h = seg.history_
    for e in h.epochs:
        print(f"epoch {e['epoch']:3d} step {e['step']:5d} train_loss {e['train_loss']:.4f} "
              f"val_dice {e.get('val_dice', float('nan')):.4f}", file=sys.stderr)
    vals = [e.get("val_dice") for e in h.epochs if e.get("val_dice") is not None]
    result = {
        "device": h.device,
        "world_size": h.world_size,
        "steps": int(h.steps),
        "s_per_step": h.seconds / max(h.steps, 1),
        "steps_per_s": h.steps / max(h.seconds, 1e-9),
        "best_val_dice": h.best_value,
        "best_val_dice_per_class": (h.epochs[h.best_epoch - 1].get("val_dice_per_class")
                                    if h.best_epoch else None),
        "last_val_dice": vals[-1] if vals else None,
        "fit_seconds": fit_seconds,
        "n_train_slices": seg.n_train_slices_,
        "architecture": seg.config.architecture,
        "n_params": sum(p.numel() for p in seg.net_.parameters()),
    }
    if not args.no_test and test_c:
        result["test_dice"] = _pooled_dice(seg, index, index.keys_of(test_c))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
