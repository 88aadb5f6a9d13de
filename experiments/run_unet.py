"""U-Net track on held-out cases: train on a CPU budget, tune on validation, score test.

Usage (from the repository root)::

    .venv/bin/python experiments/run_unet.py --data uwmgi_derived --minutes 8
    .venv/bin/python experiments/run_unet.py --data phantom --minutes 8

One case-grouped split (``gitract.data.splits.make_case_splits``: ``--n-test`` test
cases, one validation case, the rest train); the validation case selects the checkpoint
and the per-class thresholds, the test cases are only scored. Writes, atomically,
``reports/unet/<data>_seed<seed>.json`` (everything, with the exact command) and
``.md`` (tables), plus ``<data>_seed<seed>_splits.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="uwmgi_derived", help="load_dataset kind")
    p.add_argument("--path", type=Path, default=None, help="dataset folder (default per kind)")
    p.add_argument("--minutes", type=float, default=8.0, help="training time budget")
    p.add_argument("--epochs", type=int, default=None, help="epoch budget (default: time only)")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--n-test", type=int, default=2, help="held-out test cases")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of validation cases")
    p.add_argument("--every", type=int, default=1, help="keep every N-th slice (phantom)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: two threads crawl on a shared 2-core machine)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="report folder (default reports/unet)")
    return p.parse_args(argv)


def _f(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def main(argv=None) -> int:
    import numpy as np
    import torch

    from gitract.data.loaders import load_dataset
    from gitract.data.splits import make_case_splits, save_splits
    from gitract.evaluation import evaluate_unet_track
    from gitract.models.unet import UNetConfig, UNetSegmenter
    from gitract.paths import reports_dir
    from gitract.utils.io import write_text_atomic

    args = _parse(argv)
    command = "cd /work/main && .venv/bin/python " + shlex.join(
        [sys.argv[0] if argv is None else "experiments/run_unet.py",
         *(sys.argv[1:] if argv is None else argv)])
    out = args.out or reports_dir() / "unet"
    stem = f"{args.data}_seed{args.seed}"

    t0 = time.perf_counter()
    stacks = load_dataset(args.data, args.path)
    if args.every > 1:
        stacks = [s.subset(slice(None, None, args.every)) for s in stacks]
    stacks = [s for s in stacks if s.n_slices]
    load_seconds = time.perf_counter() - t0
    cases = sorted({s.case for s in stacks})
    splits = make_case_splits(cases, n_folds=0, n_test=args.n_test,
                              val_fraction=args.val_fraction, random_state=args.seed)
    fold = splits["folds"][0]
    save_splits(splits, out / f"{stem}_splits.json")

    config = UNetConfig(
        image_size=args.image_size, base_channels=args.base_channels, depth=args.depth,
        batch_size=args.batch_size, lr=args.lr, max_epochs=args.epochs,
        max_minutes=args.minutes, device=args.device, num_threads=args.threads,
        random_state=args.seed, progress=False,
    )
    from gitract.data.splits import split_stacks

    model = UNetSegmenter(config).fit(split_stacks(stacks, fold["train"]),
                                      split_stacks(stacks, fold["val"]) or None)
    res = evaluate_unet_track(stacks, fold["train"], fold["val"], splits["test"], config,
                              model=model, keep_proba=False)
    h = model.history_
    per_class = res.score.per_class
    mean_class_dice = float(np.nanmean([v["dice"] for v in per_class.values()]))
    summary = res.summary()
    summary.update({
        "command": command,
        "data": args.data,
        "n_cases": len(cases), "n_stacks": len(stacks),
        "n_slices": int(sum(s.n_slices for s in stacks)),
        "slices_per_case": {c: sum(s.n_slices for s in stacks if s.case == c) for c in cases},
        "image_shapes": sorted({f"{s.shape[0]}x{s.shape[1]}" for s in stacks}),
        "mean_class_dice": mean_class_dice,
        "load_seconds": load_seconds,
        "budget": {"max_minutes": args.minutes, "max_epochs": args.epochs,
                   "threads": args.threads, "epochs_run": len(h.epochs),
                   "stopped": h.stopped, "train_loop_seconds": h.seconds},
        "history": h.to_dict(),
        "env": {"python": platform.python_version(), "torch": torch.__version__,
                "device": h.device, "platform": platform.platform()},
    })
    write_text_atomic(out / f"{stem}.json", json.dumps(summary, indent=2, default=str) + "\n")
    write_text_atomic(out / f"{stem}.md", _markdown(summary, res))
    print(f"{args.data}: mean class Dice {mean_class_dice:.3f}, score {res.score.score:.3f}, "
          f"{len(h.epochs)} epochs in {h.seconds / 60:.1f} min (stopped by {h.stopped}); "
          f"wrote {out / (stem + '.md')}")
    return 0


def _markdown(s: dict, res) -> str:
    h = s["history"]
    b = s["budget"]
    lines = [
        f"# U-Net track (2.5D) on `{s['data']}`",
        "",
        "Generated by `experiments/run_unet.py`; do not edit. Exact command:",
        "",
        "```",
        s["command"],
        "```",
        "",
        f"- data: {s['n_cases']} cases, {s['n_stacks']} case-day stacks, {s['n_slices']} slices, "
        f"sizes {', '.join(s['image_shapes'])}",
        f"- split (case-grouped, `make_case_splits`, seed {s['config']['random_state']}): "
        f"train {s['train_cases']}, validation {s['val_cases']}, test {s['test_cases']}",
        f"- net: U-Net base {s['config']['base_channels']} channels, depth {s['config']['depth']}, "
        f"{s['config']['image_size']}x{s['config']['image_size']} grid, 2.5D offsets "
        f"{s['config']['offsets']}, batch {s['config']['batch_size']}, lr {s['config']['lr']} "
        f"(AdamW, cosine over the budget), BCE + Dice, augmentation "
        f"{'on' if s['config']['augment'] else 'off'}",
        f"- budget: {b['max_minutes']} min / {b['max_epochs']} epochs on {s['env']['device']} "
        f"with {b['threads']} torch thread(s); ran {b['epochs_run']} epochs in "
        f"{b['train_loop_seconds'] / 60:.1f} min, stopped by `{b['stopped']}`; checkpoint of "
        f"epoch {h['best_epoch']} ({h['monitor']} {_f(h['best_value'])}) restored",
        f"- fit {s['fit_seconds']:.0f} s (data preparation included), prediction "
        f"{s['ms_per_slice']:.0f} ms per test slice (normalise, 2.5D, resize both ways, net), "
        f"model {s['model_bytes'] / 1e6:.2f} MB, {s['n_train_blocks']} training slices",
        "",
        "## Test cases (thresholds tuned on the validation case)",
        "",
        "| class | Dice | Hausdorff | score | threshold | min size |",
        "|---|---|---|---|---|---|",
    ]
    for row in res.table().itertuples():
        thr = "" if math.isnan(row.threshold) else f"{row.threshold:.2f}"
        ms = "" if math.isnan(row.min_size) else f"{int(row.min_size)}"
        lines.append(f"| {row._1} | {_f(row.dice)} | {_f(row.hausdorff)} | {_f(row.score)} "
                     f"| {thr} | {ms} |")
    lines += [
        "",
        f"Mean Dice over the three classes: **{s['mean_class_dice']:.3f}**.",
        "",
        s["metrics"]["conventions"],
        "",
        "## Training history",
        "",
        "| epoch | train loss | val loss | val Dice (0.5) | lr | s |",
        "|---|---|---|---|---|---|",
    ]
    for e in h["epochs"]:
        lines.append(f"| {e['epoch']} | {_f(e['train_loss'])} | {_f(e.get('val_loss'))} "
                     f"| {_f(e.get('val_dice'))} | {e['lr']:.2e} | {e['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
