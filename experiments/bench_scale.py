"""Scale benchmark: peak memory and time of a comparison as the dataset grows.

Writes phantom datasets in the Kaggle layout at 1x, 4x and 16x a base of 96 slices
(4, 16 and 64 cases of 3 days of 8 slices, the four Kaggle image sizes: many scans, so
that two workers have work to share), runs one comparison on
each (a LightGBM block track on the mm filter bank with 2.5D columns, a CNN block track
and the U-Net, small budgets in steps
and epochs, capped training samples) with ``n_jobs`` 1, and at 4x also with ``n_jobs``
2, each in a fresh process. It prints and writes to ``reports/bench_scale.{json,md}``:
peak RSS of the whole process tree (sampled every 0.1 s), wall time and slices per second
of the per-scan stages (validation sweep, test scoring).

Every run uses one thread per process (``OMP_NUM_THREADS=1`` and friends), so "n_jobs 2"
measures what a second worker adds to the per-scan stages, not thread contention.

Usage::

    .venv/bin/python experiments/bench_scale.py [--scales 1 4 16] [--json]

With ``--json`` the last stdout line is one JSON object (see ``_summary``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BASE = {"n_cases": 4, "n_days": 3, "n_slices": 8}
KAGGLE_SLICES = 38_500
#: The largest Kaggle scan: 144 slices of 360 x 310 pixels.
KAGGLE_SCAN_PIXELS = 144 * 360 * 310
#: Bytes held per pixel of the scan being processed, counted from the arrays a per-scan
#: stage keeps at once: raw and normalised float32 volumes (8), float32 probabilities of
#: three classes (12), truth and predicted masks (6), the sweep's temporaries (~6), and
#: the U-Net's resized 2.5D inputs and outputs (~8).
BYTES_PER_SCAN_PIXEL = 40

TRACKS = [
    {"name": "lightgbm-33", "kind": "blocks",
     "params": {"classifier": "lightgbm", "block_size": 33, "step": 8, "n_per_class": 60,
                "background_cap": 120, "max_train_blocks": 20000,
                # issue 23's features (quick.yaml's block setting): the filter bank in mm
                # and the 2.5D columns from the neighbouring slices.
                "features": "bank", "feature_params": {"neighbours": True},
                "model_params": {"n_estimators": 100, "n_jobs": 1}}},
    {"name": "cnn-33", "kind": "cnn",
     "params": {"block_size": 33, "step": 4, "n_per_class": 30, "background_cap": 60,
                "max_train_blocks": 20000,
                "model_params": {"max_epochs": 2, "batch_size": 128, "num_threads": 1}}},
    {"name": "unet", "kind": "unet",
     "params": {"image_size": 128, "max_steps": 60, "max_epochs": None, "batch_size": 8,
                "num_threads": 1}},
]


def _config(name: str, data: Path) -> dict:
    return {"name": name, "seed": 0, "data": {"kind": "phantom", "path": str(data)},
            "split": {"n_folds": 1, "test_fraction": 0.34, "val_fraction": 0.25},
            "report": {"n_example_slices": 2}, "tracks": TRACKS}


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def _run(config_path: Path, out: Path, n_jobs: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "gitract", "compare", str(config_path), "--out", str(out),
           "--n-jobs", str(n_jobs), "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - start
    thread.join()
    if proc.returncode:
        raise SystemExit(f"error: {' '.join(cmd)} failed:\n{output[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    stages: dict[str, dict] = {}
    per_slice_wall = 0.0
    for name, track in summary["tracks"].items():
        for stage, info in (track["folds"][0].get("stages") or {}).items():
            stages[f"{name}:{stage}"] = info
            per_slice_wall += info["wall_s"]
    return {"wall_s": wall, "peak_rss_mb": peak[0] / 2**20, "stages": stages,
            "per_scan_stage_wall_s": per_slice_wall,
            "growth_mb_per_slice": _growth_per_slice(stages)}


def _growth_per_slice(stages: dict) -> float | None:
    """Largest slope (MB per slice) of resident memory against test slices done, fitted
    over each track's test stage (RSS is recorded after every chunk of scans): what a
    run keeps per slice it has seen, free of the run-to-run noise of peak positions."""
    import numpy as np

    slopes = []
    for name, info in stages.items():
        points = info.get("rss_mb_by_slices") or []
        if name.endswith(":test") and len(points) >= 3:
            x, y = np.asarray(points, dtype=float).T
            slopes.append(float(np.polyfit(x, y, 1)[0]))
    return max(slopes) if slopes else None


def _index_mb_per_slice(data: Path) -> float:
    """Memory the data index holds per slice (tracemalloc, in this process)."""
    import tracemalloc

    from gitract.data.index import index_dataset

    index_dataset("phantom", data)  # imports and one-off caches stay out of the count
    tracemalloc.start()
    index = index_dataset("phantom", data)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held / 2**20 / index.n_slices


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--parallel-scale", type=int, default=4,
                        help="the scale also run with n_jobs 2")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: temp)")
    parser.add_argument("--out", type=Path, default=REPO / "reports")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from gitract.data.phantom import PhantomConfig, write_phantom

    work = args.work or Path(tempfile.mkdtemp(prefix="gitract-bench-scale-"))
    runs = []
    for scale in args.scales:
        phantom = PhantomConfig(n_cases=BASE["n_cases"] * scale, n_days=BASE["n_days"],
                                n_slices=BASE["n_slices"], seed=0)
        data = work / f"data-{scale}x"
        if not (data / "train.csv").is_file():
            t0 = time.perf_counter()
            write_phantom(data, phantom)
            print(f"wrote the {scale}x phantom in {time.perf_counter() - t0:.0f} s", flush=True)
        cfg_path = work / f"scale-{scale}x.yaml"
        cfg_path.write_text(yaml.safe_dump(_config(f"scale-{scale}x", data)))
        jobs = [1, 2] if scale == args.parallel_scale else [1]
        for n_jobs in jobs:
            out = work / f"run-{scale}x-j{n_jobs}"
            result = _run(cfg_path, out, n_jobs)
            n = phantom.n_cases * phantom.n_days * phantom.n_slices
            row = {"scale": scale, "slices": n, "n_jobs": n_jobs,
                   "peak_rss_mb": round(result["peak_rss_mb"], 1),
                   "wall_s": round(result["wall_s"], 1),
                   "per_scan_stage_wall_s": round(result["per_scan_stage_wall_s"], 1),
                   "growth_mb_per_slice": result["growth_mb_per_slice"],
                   "index_mb_per_slice": round(_index_mb_per_slice(data), 5),
                   "stage_slices_per_s": {k: round(v["slices_per_s"], 2)
                                          for k, v in result["stages"].items()
                                          if v.get("slices_per_s")}}
            runs.append(row)
            print(json.dumps(row), flush=True)
    summary = _summary(runs, args.parallel_scale)
    _write(args.out, runs, summary)
    if args.json:
        print(json.dumps(summary))
    return 0


def _summary(runs: list[dict], parallel_scale: int) -> dict:
    by = {(r["scale"], r["n_jobs"]): r for r in runs}
    out: dict = {"runs": runs}
    scales = sorted({r["scale"] for r in runs})
    lo, hi = by.get((scales[0], 1)), by.get((scales[-1], 1))
    if lo and hi and hi is not lo:
        out["rss_ratio_16x_1x"] = round(hi["peak_rss_mb"] / lo["peak_rss_mb"], 3)
        out["time_per_slice_ratio_16x_1x"] = round(
            (hi["wall_s"] / hi["slices"]) / (lo["wall_s"] / lo["slices"]), 3)
    one, two = by.get((parallel_scale, 1)), by.get((parallel_scale, 2))
    if one and two:
        out["parallel_speedup"] = round(one["per_scan_stage_wall_s"] / two["per_scan_stage_wall_s"], 3)
        out["parallel_speedup_wall"] = round(one["wall_s"] / two["wall_s"], 3)
    if hi:
        phantom_scan = BASE["n_slices"] * 360 * 310
        scan_term = BYTES_PER_SCAN_PIXEL * (KAGGLE_SCAN_PIXELS - phantom_scan) / 2**20
        remaining = KAGGLE_SLICES - hi["slices"]
        growth = max(0.0, hi.get("growth_mb_per_slice") or 0.0)
        index_term = hi.get("index_mb_per_slice") or 0.0
        out["est_peak_rss_mb_kaggle"] = round(
            hi["peak_rss_mb"] + (growth + index_term) * remaining + scan_term, 1)
        out["estimate_method"] = (
            f"peak at {hi['slices']} slices + (what a run keeps per slice: the steepest "
            f"within-run growth of resident memory over a test stage, {growth:.4f} MB/slice, "
            f"+ the data index, {index_term:.4f} MB/slice by tracemalloc) x the "
            f"{remaining} remaining slices + {BYTES_PER_SCAN_PIXEL} bytes per pixel for the "
            "largest Kaggle scan (144 x 360 x 310) beyond the phantom's largest "
            f"({BASE['n_slices']} x 360 x 310); training samples are capped "
            "(max_train_blocks), so they do not grow with the dataset")
        mid = by.get((scales[-2], 1)) if len(scales) > 1 else None
        if mid and hi["slices"] > mid["slices"]:
            slope = max(0.0, (hi["peak_rss_mb"] - mid["peak_rss_mb"]) / (hi["slices"] - mid["slices"]))
            out["est_peak_rss_mb_kaggle_peak_slope"] = round(
                hi["peak_rss_mb"] + slope * remaining + scan_term, 1)
            out["peak_slope_method"] = (
                f"a cruder bound: the slope between the peaks of the two largest runs "
                f"({slope:.4f} MB/slice) extrapolated; peaks of separate runs also differ "
                "by tens of MB for reasons unrelated to size (which stage peaks, heap "
                "fragmentation)")
    return out


def _write(folder: Path, runs: list[dict], summary: dict) -> None:
    sys.path.insert(0, str(REPO))
    from gitract.utils.io import write_text_atomic

    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "bench_scale.json", json.dumps(summary, indent=2) + "\n")
    lines = ["# Scale benchmark", "",
             f"`python experiments/bench_scale.py {' '.join(sys.argv[1:])}`: phantom datasets "
             "in the Kaggle layout (" + ", ".join(str(BASE["n_cases"] * r["scale"]) for r in runs
                                                   if r["n_jobs"] == 1)
             + " cases x 3 days x 8 slices; the four Kaggle sizes), one comparison each with a "
             "LightGBM block track (the mm filter bank with 2.5D columns, issue 23's features), "
             "a CNN block track and the U-Net (budgets in steps/epochs, training samples capped "
             "at 20,000 blocks), one thread per process.", "",
             "| slices | n_jobs | peak RSS (MB) | wall (s) | per-scan stages (s) | time per slice (s) |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['slices']} | {r['n_jobs']} | {r['peak_rss_mb']:.0f} | {r['wall_s']:.0f} "
                     f"| {r['per_scan_stage_wall_s']:.0f} | {r['wall_s'] / r['slices']:.3f} |")
    lines += ["", "Slices per second per stage (`track:stage`):", ""]
    for r in runs:
        stages = ", ".join(f"{k} {v}" for k, v in r["stage_slices_per_s"].items())
        lines.append(f"- {r['slices']} slices, n_jobs {r['n_jobs']}: {stages}")
    lines += ["", "Ratios and estimate:", ""]
    for key in ("rss_ratio_16x_1x", "time_per_slice_ratio_16x_1x", "parallel_speedup",
                "parallel_speedup_wall", "est_peak_rss_mb_kaggle", "estimate_method",
                "est_peak_rss_mb_kaggle_peak_slope", "peak_slope_method"):
        if key in summary:
            lines.append(f"- {key}: {summary[key]}")
    write_text_atomic(folder / "bench_scale.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
