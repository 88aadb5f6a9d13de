"""Block-wise vs dense (fully convolutional) CNN inference on whole slices.

For each block size, a ``BlockCNNClassifier`` with the default architecture (weights from
one short fit on random blocks: timings do not depend on the weights) maps a few
``--size`` x ``--size`` slices two ways:

- block-wise: ``gitract.blocks.extract_blocks`` + batched ``predict_proba`` over the
  blocks centred at every pixel (stride 1) or at the ``block_grid`` centres of the
  report stride;
- dense: one ``predict_proba_dense`` pass over the reflect-padded slice (stride 1), read
  at the same grid centres for the report stride.

Block-wise at stride 1 costs minutes per slice on 2 cores, so by default it is timed on
every ``1 / --blockwise-fraction``-th row of the slice and scaled to the whole slice
(its cost is linear in the number of blocks: fixed-size batches); ``--blockwise-fraction
1`` times every block. The maximum absolute difference of the probabilities is taken
over every block that was classified both ways.

Usage::

    python experiments/bench_dense.py [--block-size 33 --block-size 63] [--n-slices 3]
        [--device auto] [--threads 2] [--out reports/bench_dense] [--json]

Writes ``<out>.md`` and ``<out>.json`` atomically and prints the table; with ``--json``
the last stdout line is one JSON object. Its top-level ``stride1`` / ``report_stride`` /
``block_size`` describe the block size with the smaller stride-1 speedup (the
conservative figure); ``by_block_size`` holds all of them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from gitract.blocks import block_grid, extract_blocks
from gitract.utils.io import write_text_atomic


def _slices(n: int, size: int, seed: int) -> list[np.ndarray]:
    """Smooth random float32 images in [0, 1] (content does not change the timings)."""
    from scipy.ndimage import gaussian_filter

    gen = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = gaussian_filter(gen.random((size, size)), 3) + 0.1 * gen.random((size, size))
        img = (img - img.min()) / (img.max() - img.min())
        out.append(img.astype(np.float32))
    return out


def _model(block_size: int, device: str, threads: int, seed: int):
    from gitract.models.cnn import BlockCNNClassifier

    gen = np.random.default_rng(seed)
    X = gen.random((64, block_size * block_size), dtype=np.float32)
    y = np.arange(64) % 4
    return BlockCNNClassifier(
        block_size, max_epochs=1, batch_size=32, device=device, num_threads=threads,
        validation_fraction=0.0, random_state=seed,
    ).fit(X, y)


def _blockwise(model, image, rows, cols, *, block_size: int, batch: int) -> np.ndarray:
    parts = []
    for start in range(0, rows.size, batch):
        blocks = extract_blocks(image, rows[start : start + batch], cols[start : start + batch], block_size=block_size)
        parts.append(model.predict_proba(blocks))
    return np.concatenate(parts)


def _sync(model) -> None:
    if model.device_.type == "cuda":
        import torch

        torch.cuda.synchronize()


def bench_block_size(
    block_size: int, images: list[np.ndarray], *, device: str, threads: int, stride: int,
    fraction: float, batch: int, seed: int,
) -> dict:
    model = _model(block_size, device, threads, seed)
    h, w = images[0].shape
    # warm-up (allocator, oneDNN primitives) outside the timings
    model.predict_proba_dense(images[0])
    _blockwise(model, images[0], np.zeros(batch, np.intp), np.zeros(batch, np.intp), block_size=block_size, batch=batch)

    n_rows = max(1, int(round(h * fraction)))
    sub_rows = np.unique(np.linspace(0, h - 1, n_rows).round().astype(np.intp))
    rr1, cc1 = (a.ravel() for a in np.meshgrid(sub_rows, np.arange(w), indexing="ij"))
    grows, gcols = block_grid((h, w), step=stride)
    rrs, ccs = (a.ravel() for a in np.meshgrid(grows, gcols, indexing="ij"))

    t_block1 = t_blocks = t_dense1 = t_denses = 0.0
    max_diff = 0.0
    for image in images:
        t = time.perf_counter()
        dense = model.predict_proba_dense(image)
        _sync(model)
        t_dense1 += time.perf_counter() - t

        t = time.perf_counter()
        dense_grid = model.predict_proba_dense(image)[np.ix_(grows, gcols)]
        _sync(model)
        t_denses += time.perf_counter() - t

        t = time.perf_counter()
        p1 = _blockwise(model, image, rr1, cc1, block_size=block_size, batch=batch)
        t_block1 += (time.perf_counter() - t) * (h * w) / rr1.size

        t = time.perf_counter()
        ps = _blockwise(model, image, rrs, ccs, block_size=block_size, batch=batch)
        t_blocks += time.perf_counter() - t

        max_diff = max(
            max_diff,
            float(np.abs(dense[rr1, cc1] - p1).max()),
            float(np.abs(dense_grid.reshape(-1, dense.shape[-1]) - ps).max()),
        )
    n = len(images)

    def entry(tb, td):
        return {
            "blockwise_s_per_slice": tb / n,
            "dense_s_per_slice": td / n,
            "speedup": tb / td,
        }

    return {
        "block_size": block_size,
        "stride1": {**entry(t_block1, t_dense1), "blockwise_fraction_timed": rr1.size / (h * w)},
        "report_stride": {**entry(t_blocks, t_denses), "stride": stride, "n_blocks": int(rrs.size)},
        "max_abs_diff": max_diff,
    }


def _table(results: list[dict], meta: dict) -> str:
    lines = [
        "# Block-wise vs dense CNN inference",
        "",
        f"{meta['n_slices']} slices of {meta['size']}x{meta['size']}, device {meta['device']}, "
        f"{meta['threads']} torch threads, batch {meta['batch_size']}; "
        f"block-wise stride 1 timed on {meta['blockwise_fraction']:.3g} of the blocks and scaled. "
        "Shared, noisy machine: read the ratios.",
        "",
        "| block | stride | block-wise s/slice | dense s/slice | speedup | max abs diff |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for key, stride in (("stride1", 1), ("report_stride", r["report_stride"]["stride"])):
            e = r[key]
            lines.append(
                f"| {r['block_size']} | {stride} | {e['blockwise_s_per_slice']:.3f} | "
                f"{e['dense_s_per_slice']:.3f} | {e['speedup']:.1f}x | {r['max_abs_diff']:.1e} |"
            )
    lines += ["", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--block-size", type=int, action="append", dest="block_sizes",
                        help="block size (repeat for several; default 33 and 63)")
    parser.add_argument("--n-slices", type=int, default=3)
    parser.add_argument("--size", type=int, default=266)
    parser.add_argument("--stride", type=int, default=4, help="report stride")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batch-size", type=int, default=1024, help="blocks per predict_proba call")
    parser.add_argument("--blockwise-fraction", type=float, default=0.125,
                        help="share of the stride-1 blocks timed block-wise (1 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/bench_dense"),
                        help="output stem: writes <out>.md and <out>.json")
    parser.add_argument("--json", action="store_true", help="last stdout line: one JSON object")
    args = parser.parse_args(argv)
    if not 0 < args.blockwise_fraction <= 1:
        parser.error(f"--blockwise-fraction must be in (0, 1], got {args.blockwise_fraction}")
    block_sizes = args.block_sizes or [33, 63]

    import torch

    from gitract.models._device import select_device

    device = str(select_device(args.device))
    images = _slices(args.n_slices, args.size, args.seed)
    results = [
        bench_block_size(
            bs, images, device=device, threads=args.threads, stride=args.stride,
            fraction=args.blockwise_fraction, batch=args.batch_size, seed=args.seed,
        )
        for bs in block_sizes
    ]
    meta = {
        "n_slices": args.n_slices, "size": args.size, "device": device, "threads": args.threads,
        "batch_size": args.batch_size, "blockwise_fraction": args.blockwise_fraction,
        "torch": torch.__version__, "python": platform.python_version(),
        "command": " ".join(["python", "experiments/bench_dense.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    worst = min(results, key=lambda r: r["stride1"]["speedup"])
    summary = {
        "stride1": worst["stride1"],
        "report_stride": worst["report_stride"],
        "max_abs_diff": max(r["max_abs_diff"] for r in results),
        "device": device,
        "block_size": worst["block_size"],
        "by_block_size": {str(r["block_size"]): r for r in results},
        "meta": meta,
    }
    table = _table(results, meta)
    stem = Path(args.out)
    write_text_atomic(stem.with_name(stem.name + ".md"), table)
    write_text_atomic(stem.with_name(stem.name + ".json"), json.dumps(summary, indent=2) + "\n")
    print(table)
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
