"""One evaluation step of a run: tune on the validation scans, then score the test scans.

Writes ``steps/fold<k>/<track>/eval/``: ``metrics.json`` (the tuned thresholds and volume
steps that ``gitract predict`` applies, and the test metrics), ``sweep.csv``,
``postprocess.csv`` (every volume-step candidate's validation score) and, when the fold has
test cases, the per-slice / per-case metrics, predictions and the report's analysis tables.
A fold without test cases (a training run) stops after tuning: nothing is scored.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from gitract.compare import _analysis as A
from gitract.compare import _scan_eval as E
from gitract.compare._files import clean, write_csv, write_json
from gitract.compare._steps import mark_done
from gitract.postprocessing import (
    Postprocess,
    PostprocessChoice,
    ThresholdTuning,
    combine_positions,
    hausdorff_pool_factor,
    chosen_thresholds,
    postprocess_from_statistics,
    tuning_from_statistics,
)
from gitract.tracks import PostprocessSettings
from gitract.utils.io import atomic_path
from gitract.utils.memory import resident_mb
from gitract.utils.parallel import ParallelConfig, map_scans
from gitract.utils.progress import progress_counter

log = logging.getLogger("gitract.compare")

__all__ = ["evaluate_step", "validation_scores"]


def validation_scores(tuning) -> dict[str, dict]:
    """Per class: the chosen threshold and minimum size, and the validation Dice, Hausdorff
    and score they gave (from the sweep; optimistic, since the same scans chose them)."""
    out = {}
    sweep = tuning.sweep if tuning.sweep is not None else pd.DataFrame()
    for k, cls in enumerate(tuning.classes):
        thr, size = float(tuning.thresholds[k]), int(tuning.min_sizes[k])
        row = {"threshold": thr, "min_size": size, "dice": None, "hausdorff": None,
               "score": None}
        if len(sweep):
            hit = sweep[(sweep["class"] == cls) & np.isclose(sweep["threshold"], thr)
                        & (sweep["min_size"] == size)]
            if len(hit):
                row.update({m: float(hit.iloc[0][m]) for m in ("dice", "hausdorff", "score")})
        out[cls] = row
    return out


def tune_volume_steps(adapter, name: str, index, train_keys: Sequence[str],
                      val_keys: Sequence[str], tuning: ThresholdTuning, settings: dict,
                      conventions, pool_factor: int, parallel: ParallelConfig) -> tuple:
    """``(PostprocessChoice, candidate table, stage timings)``: the volume steps chosen per
    class on ``val_keys`` at the tuned thresholds; the z-range from ``train_keys``' masks.
    Test scans are never read here."""
    post = PostprocessSettings(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in settings.items()})
    classes = index.classes
    if not post.any_on or not val_keys:
        return PostprocessChoice.off(classes), pd.DataFrame(), {}
    t0 = time.perf_counter()
    z_ranges = {c: None for c in classes}
    if post.z_range and train_keys:
        z_ranges = combine_positions(
            map_scans(E.training_positions, [index.source(k) for k in train_keys],
                      parallel=parallel, desc=f"{name}: training slice ranges"), classes)
    t1 = time.perf_counter()
    parts = map_scans(E.postprocess_validation, [index.source(k) for k in val_keys],
                      parallel=parallel, desc=f"{name}: volume-step sweep", adapter=adapter,
                      tuning=tuning, candidates=post.candidates(), z_ranges=z_ranges,
                      conventions=conventions, pool_factor=pool_factor)
    choice, table = postprocess_from_statistics(pd.concat([p[0] for p in parts],
                                                          ignore_index=True), classes, z_ranges)
    return choice, table, {"wall_s": time.perf_counter() - t0, "z_range_s": t1 - t0,
                           "predict_s": sum(p[1] for p in parts),
                           "sweep_s": sum(p[2] for p in parts)}


def postprocess_validation(table: pd.DataFrame) -> dict[str, dict]:
    """Per class: validation score without the volume steps and with the chosen ones (and
    the chosen move of the threshold)."""
    out = {}
    if not len(table):
        return out
    for cls, part in table.groupby("class", sort=False):
        off = part[(part["threshold_shift"] == 0) & (part["gate_cut"] == 0)
                   & (part["gate_area"] == 0)
                   & np.isinf(part["z_margin"]) & (part["component_fraction"] == 0)]
        chosen = part[part["chosen"]]
        out[cls] = {"score_before": float(off["score"].iloc[0]) if len(off) else None,
                    "score_after": float(chosen["score"].iloc[0]) if len(chosen) else None,
                    "threshold_shift": float(chosen["threshold_shift"].iloc[0])
                    if len(chosen) else 0.0}
    return out


def evaluate_step(adapter, name: str, fold: int, index, val_keys: Sequence[str],
                  test_keys: Sequence[str], directory: Path, key: str, conventions,
                  examples: Sequence[str], bins: int, tuning_options: dict,
                  parallel: ParallelConfig, train_keys: Sequence[str] = ()) -> None:
    """Tune ``adapter``'s thresholds, then the volume steps, on ``val_keys`` (the z-range
    on ``train_keys``) and score ``test_keys`` (if any) into ``directory``, then mark the
    step done under ``key``."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    classes = index.classes
    stages = {}
    factor = 1
    if val_keys:
        # Thresholds come from validation scans only; test scans never reach the sweep.
        side = max(max(index.ref(k).shape) for k in val_keys)
        factor = hausdorff_pool_factor(side, tuning_options["hausdorff_max_side"])
        t0 = time.perf_counter()
        parts = map_scans(E.validation_statistics, [index.source(k) for k in val_keys],
                          parallel=parallel, desc=f"{name}: validation sweep", adapter=adapter,
                          grid=tuning_options["threshold_grid"],
                          min_sizes=tuning_options["min_sizes"], conventions=conventions,
                          pool_factor=factor)
        tuning = tuning_from_statistics(pd.concat([p[0] for p in parts], ignore_index=True),
                                        classes, keys=list(val_keys), pool_factor=factor)
        stages["validate"] = _stage(time.perf_counter() - t0, sum(p[1] for p in parts),
                                    read=sum(p[2] for p in parts),
                                    predict=sum(p[3] for p in parts),
                                    sweep=sum(p[4] for p in parts))
    else:
        tuning = ThresholdTuning.fixed(classes)
    steps, table, timing = tune_volume_steps(
        adapter, name, index, train_keys, val_keys, tuning,
        tuning_options.get("postprocess", {}), conventions, factor, parallel)
    if timing:
        stages["postprocess"] = timing
        # The thresholds as moved with the steps (the sweep's choice stays in sweep.csv).
        tuning = replace(tuning, thresholds=chosen_thresholds(table, tuning.thresholds,
                                                              classes))
    postprocess = Postprocess(tuning, steps)
    tag = {"model": name, "fold": fold}
    sweep = tuning.sweep if tuning.sweep is not None else pd.DataFrame()
    write_csv(directory / "sweep.csv", sweep.assign(**tag))
    write_csv(directory / "postprocess.csv", table.assign(**tag))
    common = {"fit_s": adapter.fit_seconds, "model_bytes": adapter.model_bytes,
              "tuning": tuning.to_dict(), "postprocess": steps.to_dict(),
              "postprocess_validation": postprocess_validation(table),
              "tuning_options": tuning_options,
              "validation": validation_scores(tuning) if val_keys else None,
              "val_cases": sorted({index.ref(k).case for k in val_keys})}
    if not test_keys:
        none = {"dice": None, "hausdorff": None, "score": None}
        write_json(directory / "metrics.json", clean({
            **none, "per_class": {c: dict(none) for c in classes},
            "conventions": conventions.describe(), **common, "ms_per_slice": None,
            "n_test_slices": 0, "test_cases": [], "stages": stages}))
        mark_done(directory, key)
        log.info("fold %d %s: no test cases; thresholds %s tuned on %d validation scans",
                 fold, name, list(tuning.thresholds), len(val_keys))
        return
    t0 = time.perf_counter()
    # Test scans in chunks: each chunk's predicted RLE (long strings for noisy masks) is
    # appended to predictions.csv and dropped, so memory does not grow with the test set.
    outs = []
    rss = []  # (slices done, resident MB) after each chunk: growth per slice, measured
    sources = [index.source(k) for k in test_keys]
    size = 8 * (1 if parallel.serial else max(parallel.n_jobs, 2))
    with atomic_path(directory / "predictions.csv") as tmp, \
            progress_counter(total=len(sources), desc=f"{name}: test scans") as bar:
        for start in range(0, len(sources), size):
            part = map_scans(E.test_outputs, sources[start:start + size], parallel=parallel,
                             adapter=adapter, postprocess=postprocess,
                             conventions=conventions,
                             examples=examples, n_bins=bins)
            for o in part:
                o.predictions.to_csv(tmp, mode="a", header=not outs and o is part[0],
                                     index=False)
                o.predictions = None
            outs.extend(part)
            rss.append((sum(o.n_slices for o in outs), resident_mb()))
            bar.update(len(part))
    n_test = sum(o.n_slices for o in outs)
    stages["test"] = _stage(time.perf_counter() - t0, n_test, read=sum(o.read_s for o in outs),
                            predict=sum(o.predict_s for o in outs),
                            score=sum(o.score_s for o in outs))
    stages["test"]["rss_mb_by_slices"] = rss
    result = E.combine_scores([o.score for o in outs], classes, conventions)
    write_csv(directory / "per_slice.csv", result.per_slice.assign(**tag))
    write_csv(directory / "per_case.csv", result.per_case.assign(**tag))
    write_csv(directory / "calibration.csv",
              E.combine_calibration([o.calibration for o in outs]).assign(**tag))
    write_csv(directory / "confusion.csv",
              E.combine_counts([o.confusion for o in outs], ["true", "predicted"], ["count"])
              .assign(**tag))
    empty = E.combine_empty([o.empty for o in outs])
    write_csv(directory / "empty.csv", empty.assign(**tag))
    empty_before = E.combine_empty([o.empty_before for o in outs])
    loc = pd.concat([o.localisation for o in outs], ignore_index=True)
    write_csv(directory / "localisation.csv", loc.assign(**tag))
    ex = {k: v for o in outs for k, v in o.examples.items()}
    if ex:
        with atomic_path(directory / "examples.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **ex)

    predict_s = stages["test"]["predict_s"]
    metrics = {
        **result.to_dict(),
        **common,
        "ms_per_slice": 1000.0 * predict_s / max(n_test, 1),
        "localisation_mm": A.mean_or_nan(loc["distance_mm"]),
        "localisation_mm_per_class": {c: A.mean_or_nan(loc.loc[loc["class"] == c, "distance_mm"])
                                      for c in classes},
        "empty_fp_rate": A.empty_fp_rate(empty),
        "empty_fp_rate_before": A.empty_fp_rate(empty_before),
        "n_test_slices": int(n_test),
        "test_cases": sorted({index.ref(k).case for k in test_keys}),
        "stages": stages,
    }
    write_json(directory / "metrics.json", clean(metrics))
    mark_done(directory, key)
    log.info("fold %d %s: dice %.3f hausdorff %.3f score %.3f (%.0f ms/slice)", fold, name,
             result.dice, result.hausdorff, result.score, metrics["ms_per_slice"])


def _stage(wall: float, n_slices: int, **parts: float) -> dict:
    return {"wall_s": wall, "slices": int(n_slices),
            "slices_per_s": n_slices / wall if wall > 0 else None,
            **{f"{k}_s": v for k, v in parts.items()}}
