"""Benchmark the block stage: extraction, per-slice features, probability maps.

Prints a table and writes ``bench_blocks.md`` and ``bench_blocks.json`` (atomically)
into ``reports/`` (``--out`` to change). With ``--json`` the last stdout line is one JSON
object::

    {"block_views_per_s": .., "features_s_per_slice": .., "probmap_ms_per_slice": {"rf": .., "lightgbm": ..}}

- ``block_views_per_s``: 33x33 block views created per second by ``block_view``
  (zero-copy strided view, step 1, every pixel of a 266x266 slice). The rate of
  ``extract_blocks`` (fancy indexing: it copies the blocks, so memory-bound) is
  reported beside it for 33x33 and 63x63.
- ``features_s_per_slice``: ``FilterFeaturizer.prepare`` on one 266x266 slice.
- ``probmap_ms_per_slice``: a full stride-4 map of a 266x266 slice (features +
  ``predict_proba`` at the grid centres + interpolation to every pixel, through
  ``gitract.probmaps.predict_proba_map`` when present) for models with the default
  parameters of ``gitract.models.pipelines``, trained on a few phantom slices.

Times are medians of ``--repeats`` runs; the machine may be shared, so they drift.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from gitract.blocks import (
    block_view,
    dominant_labels,
    extract_blocks,
    grid_centres,
    sample_block_centres,
)
from gitract.features import make_featurizer
from gitract.models.pipelines import make_lgbm, make_rf
from gitract.paths import reports_dir
from gitract.utils.io import write_text_atomic

SHAPE = (266, 266)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _slices(n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """``n`` labelled 266x266 slices: phantom when available, else synthetic ellipses."""
    try:
        from gitract.data.phantom import PhantomConfig, make_phantom_case
        from gitract.preprocessing import normalize_intensity

        config = PhantomConfig(n_cases=1, n_days=1, n_slices=max(n + 4, 8), seed=seed, sizes=(SHAPE,))
        stack = make_phantom_case(config, 0, 0)
        volume = normalize_intensity(stack.image)
        labelled = [i for i in range(stack.n_slices) if stack.masks[i].any()][:n]
        return [volume[i] for i in labelled], [stack.masks[i] for i in labelled], "phantom"
    except ImportError:
        from skimage.draw import ellipse

        gen = np.random.default_rng(seed)
        images, masks = [], []
        for _ in range(n):
            image = gen.normal(0.05, 0.02, SHAPE).astype(np.float32)
            mask = np.zeros((*SHAPE, 3), dtype=bool)
            rr, cc = ellipse(133, 133, 110, 120, shape=SHAPE)
            image[rr, cc] += 0.3
            for k in range(3):
                rr, cc = ellipse(*gen.uniform(70, 196, 2), *gen.uniform(10, 30, 2), shape=SHAPE)
                mask[rr, cc, k] = True
                image[rr, cc] += 0.15 * (k + 1)
            images.append(np.clip(image + gen.normal(0, 0.03, SHAPE), 0, 1).astype(np.float32))
            masks.append(mask)
        return images, masks, "synthetic ellipses"


def bench_extraction(image: np.ndarray, repeats: int, seed: int) -> dict:
    gen = np.random.default_rng(seed)
    out = {}
    for block_size in (33, 63):
        n = 50_000 if block_size == 33 else 10_000
        rows, cols = gen.integers(0, SHAPE[0], n), gen.integers(0, SHAPE[1], n)
        t = _median_time(lambda bs=block_size, r=rows, c=cols: extract_blocks(image, r, c, block_size=bs),
                         repeats)
        out[f"extract_blocks_{block_size}_per_s"] = n / t
        n_view = SHAPE[0] * SHAPE[1]
        t = _median_time(lambda bs=block_size: block_view(image, block_size=bs, step=1), repeats)
        out[f"block_view_{block_size}_per_s"] = n_view / t
    return out


def bench_probmaps(
    images, masks, repeats: int, seed: int, block_size: int, n_jobs: int
) -> tuple[dict, str]:
    featurizer = make_featurizer("filters", block_size=block_size)
    X, y = [], []
    for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
        state = featurizer.prepare(image)
        rows, cols = sample_block_centres(
            mask, n_per_class=300, background_cap=600, block_size=block_size,
            body_mask=state.body.mask, random_state=seed + i,
        )  # fmt: skip
        X.append(featurizer.transform_prepared(state, rows, cols))
        y.append(dominant_labels(mask, rows, cols))
    X, y = np.concatenate(X), np.concatenate(y)
    models = {
        "rf": make_rf(random_state=seed, n_jobs=n_jobs),
        "lightgbm": make_lgbm(random_state=seed, n_jobs=n_jobs),
    }
    try:
        from gitract.probmaps import predict_proba_map

        how = "gitract.probmaps.predict_proba_map (features + predict_proba + linear interpolation)"
    except ImportError:
        predict_proba_map = None
        how = "features + predict_proba at the grid centres (no interpolation: probmaps absent)"
    image = images[len(images) // 2]
    rr, cc = grid_centres(image.shape, step=4)
    out, cpu, fit = {}, {}, {}
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(X, y)
        fit[name] = time.perf_counter() - start
        if predict_proba_map is not None:
            def run(model=model):
                predict_proba_map(model, image, featurizer=featurizer, step=4)
        else:
            def run(model=model):
                model.predict_proba(featurizer.transform(image, rr, cc))
        run()  # warm-up (thread pools)
        start_cpu = time.process_time()
        out[name] = 1000 * _median_time(run, repeats)
        cpu[name] = 1000 * (time.process_time() - start_cpu) / repeats
    return {"probmap_ms": out, "probmap_cpu_ms": cpu, "fit_s": fit, "n_train": int(len(y)), "n_features": int(X.shape[1]),
            "n_centres": int(rr.size)}, how  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: reports/)")
    parser.add_argument("--json", action="store_true", help="print the summary JSON as the last line")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-slices", type=int, default=4, help="phantom slices to train on")
    parser.add_argument("--block-size", type=int, default=33)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=-1, help="threads of RF and LightGBM")
    args = parser.parse_args(argv)
    out_dir = args.out if args.out is not None else reports_dir()

    images, masks, source = _slices(args.n_slices, args.seed)
    extraction = bench_extraction(images[0], args.repeats, args.seed)
    featurizer = make_featurizer("filters", block_size=args.block_size)
    features_s = _median_time(lambda: featurizer.prepare(images[0]), args.repeats)
    rr, cc = grid_centres(SHAPE, step=4)
    state = featurizer.prepare(images[0])
    transform_s = _median_time(lambda: featurizer.transform_prepared(state, rr, cc), args.repeats)
    probmaps, how = bench_probmaps(
        images, masks, args.repeats, args.seed, args.block_size, args.n_jobs
    )

    summary = {
        "block_views_per_s": extraction["block_view_33_per_s"],
        "features_s_per_slice": features_s,
        "probmap_ms_per_slice": probmaps["probmap_ms"],
    }
    details = {
        **summary,
        "extraction": extraction,
        "transform_stride4_s_per_slice": transform_s,
        "probmap_cpu_ms_per_slice": probmaps["probmap_cpu_ms"],
        "fit_s": probmaps["fit_s"],
        "n_jobs": args.n_jobs,
        "n_train_blocks": probmaps["n_train"],
        "n_features": probmaps["n_features"],
        "n_centres_stride4": probmaps["n_centres"],
        "probmap_method": how,
        "block_size": args.block_size,
        "slice_shape": list(SHAPE),
        "train_source": source,
        "repeats": args.repeats,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
    }
    lines = [
        "# Block stage benchmark",
        "",
        f"266x266 slices ({source}), block size {args.block_size}, median of {args.repeats} runs.",
        "",
        "| what | figure | target |",
        "|---|---|---|",
        f"| block_view 33x33 step 1 (zero-copy) | {extraction['block_view_33_per_s'] / 1e6:.1f} M views/s | >= 1 M/s |",
        f"| extract_blocks 33x33 (copied) | {extraction['extract_blocks_33_per_s'] / 1e6:.2f} M blocks/s | |",
        f"| extract_blocks 63x63 (copied) | {extraction['extract_blocks_63_per_s'] / 1e6:.2f} M blocks/s | |",
        f"| features: prepare per slice | {features_s * 1000:.0f} ms | <= 300 ms |",
        f"| features: transform at {probmaps['n_centres']} stride-4 centres | {transform_s * 1000:.0f} ms | |",
        f"| probability map, random forest (CPU time) | {probmaps['probmap_ms']['rf']:.0f} ms "
        f"({probmaps['probmap_cpu_ms']['rf']:.0f} ms) | <= 300 ms |",
        f"| probability map, LightGBM (CPU time) | {probmaps['probmap_ms']['lightgbm']:.0f} ms "
        f"({probmaps['probmap_cpu_ms']['lightgbm']:.0f} ms) | <= 300 ms |",
        "",
        f"Probability map = {how}; {probmaps['n_features']} features; models with the default "
        f"parameters of `gitract.models.pipelines` (n_jobs={args.n_jobs}), fitted on {probmaps['n_train']} blocks "
        f"(RF {probmaps['fit_s']['rf']:.1f} s, LightGBM {probmaps['fit_s']['lightgbm']:.1f} s).",
        "",
    ]  # fmt: skip
    markdown = "\n".join(lines)
    print(markdown)
    write_text_atomic(out_dir / "bench_blocks.md", markdown)
    write_text_atomic(out_dir / "bench_blocks.json", json.dumps(details, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
