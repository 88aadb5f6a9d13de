"""The Dice a perfect segmentation network could reach on a config's test cases at each grid.

The U-Net tracks resize every slice to ``image_size`` and their probabilities back
(``gitract.models._unet_data``). This script sends the *true* masks through that same
round trip (nearest-neighbour down, bilinear back, threshold 0.5) and scores them with the
run's metric conventions: the ceiling a network at that grid cannot pass, however well it
is trained. It reads the data, trains nothing, and takes seconds.

Usage::

    python experiments/bench_resolution_ceiling.py experiments/configs/phantom_long.yaml
        [--sizes 96 128 192 256 native] [--part test|val|train] [--out reports/NAME] [--json]

Writes ``OUT.md`` and ``OUT.json`` (default ``reports/resolution_ceiling``) and prints the
table; with ``--json`` the last stdout line is one JSON object
``{"config": .., "part": .., "n_slices": .., "sizes": {"128": {"dice": .., "per_class": {..}}, ..}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def ceiling_masks(masks: np.ndarray, size: int | None) -> np.ndarray:
    """True masks (S, H, W, C) after the U-Net's grid round trip at ``size`` (None: native)."""
    from gitract.models._unet_data import prepare_masks, resize_proba_back

    if size is None:
        return np.asarray(masks, dtype=bool)
    small = prepare_masks(masks, image_size=size)
    return resize_proba_back(small, masks.shape[1:3]) >= 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--sizes", nargs="+", default=["96", "128", "192", "256", "native"])
    parser.add_argument("--part", choices=("train", "val", "test"), default="test")
    parser.add_argument("--out", default="reports/resolution_ceiling")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sizes: list[int | None] = []
    for s in args.sizes:
        if s == "native":
            sizes.append(None)
        elif s.isdigit() and int(s) > 0:
            sizes.append(int(s))
        else:
            parser.error(f"--sizes: {s!r} is neither a positive int nor 'native'")

    from gitract.compare._files import clean, write_json, write_text_atomic
    from gitract.compare._run import _conventions, load_index, make_folds
    from gitract.compare._scan_eval import combine_scores
    from gitract.config import load_config
    from gitract.metrics import score_stacks

    config = load_config(args.config)
    index = load_index(config)
    _, folds = make_folds(config, index.cases())
    part = {"train": 0, "val": 1, "test": 2}[args.part]
    conventions = _conventions(config)
    # One scan at a time, as the engine scores: only each scan's metric rows are kept.
    parts: dict[int | None, list] = {size: [] for size in sizes}
    n_slices, classes = 0, ()
    for fold in folds:
        for key in index.keys_of(fold[part]):
            stack = index.read(key)
            n_slices, classes = n_slices + stack.n_slices, stack.classes
            for size in sizes:
                masks = {stack.key: ceiling_masks(stack.masks, size)}
                parts[size].append(score_stacks([stack], masks, conventions=conventions))
            del stack
    if not n_slices:
        parser.error(f"{args.config}: no {args.part} cases in its split")
    results: dict[str, dict] = {}
    for size in sizes:
        r = combine_scores(parts[size], classes, conventions)
        results["native" if size is None else str(size)] = {
            "dice": r.dice, "hausdorff": r.hausdorff, "score": r.score,
            "per_class": {c: v["dice"] for c, v in r.per_class.items()}}
    lines = [f"# Resolution ceiling: {config.name}, {args.part} cases of every fold",
             "",
             "The true masks sent through the U-Net tracks' grid round trip (nearest down to "
             "`image_size` x `image_size`, bilinear back, threshold 0.5) and scored like a "
             "track: the most a perfectly trained network at that grid could reach. "
             f"{n_slices} slices; command: `python experiments/bench_resolution_ceiling.py "
             f"{args.config} --part {args.part}`.",
             "",
             "| grid | Dice | " + " | ".join(f"Dice {c}" for c in classes)
             + " | Hausdorff | Score |",
             "|---|---|" + "---|" * len(classes) + "---|---|"]
    for name, v in results.items():
        lines.append(f"| {name} | {v['dice']:.3f} | "
                     + " | ".join(f"{v['per_class'][c]:.3f}" for c in classes)
                     + f" | {v['hausdorff']:.3f} | {v['score']:.3f} |")
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"config": args.config, "part": args.part, "n_slices": n_slices,
               "sizes": results}
    write_text_atomic(out.with_suffix(".md"), text)
    write_json(out.with_suffix(".json"), clean(payload))
    print(text, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
