"""Tuning and scoring one scan at a time; results kept as small tables and combined.

A validation scan yields the sums threshold tuning needs
(:func:`gitract.postprocessing.sweep_statistics`), then those of the volume steps at the
tuned thresholds (:func:`gitract.postprocessing.postprocess_statistics`); a training scan
yields the slice range of each class (the z-range step); a test scan yields its metric rows,
calibration / confusion / empty-slice counts, centroid errors, predicted RLE and the
example maps the report draws. Only these leave the worker: probability maps never
outlive their scan, so memory is set by one scan whatever the dataset's size.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gitract.compare import _analysis as A
from gitract.data.index import ScanSource
from gitract.data.kaggle import stacks_to_rle_frame
from gitract.tracks import normalize_stack
from gitract.metrics import (
    DICE_WEIGHT,
    HAUSDORFF_WEIGHT,
    MetricConventions,
    ScoreResult,
    score_stacks,
)
from gitract.postprocessing import (
    apply_thresholds,
    class_positions,
    postprocess_statistics,
    shift_threshold,
    sweep_statistics,
)
from gitract.utils.memory import release_memory


@dataclass
class ScanOutputs:
    """What one test scan leaves behind (all small)."""

    key: str
    score: ScoreResult
    predictions: pd.DataFrame
    calibration: pd.DataFrame
    confusion: pd.DataFrame
    empty: pd.DataFrame
    empty_before: pd.DataFrame
    localisation: pd.DataFrame
    examples: dict = field(default_factory=dict)
    n_slices: int = 0
    read_s: float = 0.0
    predict_s: float = 0.0
    score_s: float = 0.0


def validation_statistics(source: ScanSource, adapter, *, grid, min_sizes,
                          conventions: MetricConventions, pool_factor: int) -> tuple:
    """``(sweep sums, n_slices, read_s, predict_s, sweep_s)`` of one validation scan."""
    t0 = time.perf_counter()
    stack = source.read()
    t1 = time.perf_counter()
    proba = adapter.predict_proba_stack(stack)
    t2 = time.perf_counter()
    stats = sweep_statistics(proba, stack, grid=grid, min_sizes=min_sizes,
                             conventions=conventions, pool_factor=pool_factor)
    n, t3 = stack.n_slices, time.perf_counter()
    del stack, proba
    release_memory()
    return stats, n, t1 - t0, t2 - t1, t3 - t2


def training_positions(source: ScanSource) -> dict:
    """Per class, the relative slice range where it occurs in one training scan."""
    return class_positions(source.read())


def postprocess_validation(source: ScanSource, adapter, *, tuning, candidates, z_ranges,
                           conventions: MetricConventions, pool_factor: int) -> tuple:
    """``(volume-step sums, predict_s, sweep_s)`` of one validation scan at the tuned
    thresholds ``tuning``, each moved by every ``candidates["threshold_shift"]`` (kept at
    within the sweep's range: :func:`gitract.postprocessing.shift_threshold`)."""
    stack = source.read()
    t0 = time.perf_counter()
    proba = adapter.predict_proba_stack(stack)
    t1 = time.perf_counter()
    parts = []
    for shift in candidates["threshold_shift"]:
        thresholds = [shift_threshold(t, shift) for t in tuning.thresholds]
        masks = apply_thresholds(proba, thresholds, min_size=tuning.min_sizes)
        parts.append(postprocess_statistics(proba, masks, stack, candidates=candidates,
                                            z_ranges=z_ranges, conventions=conventions,
                                            pool_factor=pool_factor, threshold_shift=shift))
    t2 = time.perf_counter()
    del stack, proba
    release_memory()
    return pd.concat(parts, ignore_index=True), t1 - t0, t2 - t1


def test_outputs(source: ScanSource, adapter, *, postprocess, conventions: MetricConventions,
                 examples: Sequence[str], n_bins: int) -> ScanOutputs:
    """Predict, postprocess (:class:`gitract.postprocessing.Postprocess`) and score one
    test scan; every table of the report's analyses (empty slices also before the volume
    steps)."""
    t0 = time.perf_counter()
    stack = source.read()
    t1 = time.perf_counter()
    proba = adapter.predict_proba_stack(stack)
    t2 = time.perf_counter()
    before = postprocess.thresholds.apply(proba)
    masks = {stack.key: postprocess.steps.apply(before, proba, stack.slice_numbers)}
    result = score_stacks([stack], masks, conventions=conventions)
    ex = {}
    wanted = [(s, sid) for s, sid in enumerate(stack.ids) if sid in set(examples)]
    if wanted:
        volume = normalize_stack(stack)
        for s, sid in wanted:
            # The figure needs nothing else: the report never reads the dataset again.
            ex[f"proba__{sid}"] = proba[s].astype(np.float16)
            ex[f"image__{sid}"] = volume[s].astype(np.float16)
            ex[f"truth__{sid}"] = stack.masks[s]
    out = ScanOutputs(
        key=stack.key, score=result,
        predictions=stacks_to_rle_frame([stack], masks, column="predicted"),
        calibration=_calibration_sums(A.calibration([stack], {stack.key: proba}, n_bins=n_bins)),
        confusion=A.block_confusion([stack], masks),
        empty=A.empty_slice_behaviour([stack], masks),
        empty_before=A.empty_slice_behaviour([stack], {stack.key: before}),
        localisation=A.localisation_errors([stack], masks),
        examples=ex, n_slices=stack.n_slices, read_s=t1 - t0, predict_s=t2 - t1,
        score_s=time.perf_counter() - t2)
    del stack, proba, masks, before
    release_memory()
    return out


def example_candidates(source: ScanSource) -> list[tuple[int, int, str, str]]:
    """``(classes present, organ pixels, scan key, slice id)`` of every slice of a scan,
    for choosing the report's example slices."""
    stack = source.read()
    present = stack.masks.any(axis=(1, 2))
    area = stack.masks.sum(axis=(1, 2, 3))
    return [(int(present[s].sum()), int(area[s]), stack.key, stack.ids[s])
            for s in range(stack.n_slices)]


# ------------------------------------------------------------------------ combining
def _calibration_sums(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(sum_p=table["mean_proba"] * table["count"],
                        pos=table["frac_pos"] * table["count"])


def combine_calibration(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Reliability table of all scans from the per-scan ones (counts add up)."""
    total = (pd.concat(parts, ignore_index=True)
             .groupby(["class", "bin"], sort=False)[["sum_p", "pos", "count"]].sum()
             .reset_index().sort_values(["class", "bin"], kind="stable"))
    total["mean_proba"] = total["sum_p"] / total["count"]
    total["frac_pos"] = total["pos"] / total["count"]
    order = list(dict.fromkeys(parts[0]["class"])) if len(parts) else []
    total["class"] = pd.Categorical(total["class"], categories=order, ordered=True)
    total = total.sort_values(["class", "bin"], kind="stable")
    total["class"] = total["class"].astype(str)
    return total[["bin", "mean_proba", "frac_pos", "count", "class"]].reset_index(drop=True)


def combine_counts(parts: Sequence[pd.DataFrame], by: list[str], columns: list[str]) -> pd.DataFrame:
    """Sum count columns of per-scan tables (first-seen order of the keys kept)."""
    return (pd.concat(parts, ignore_index=True).groupby(by, sort=False)[columns].sum()
            .reset_index())


def combine_empty(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    total = combine_counts(parts, ["class"], ["n_empty_slices", "n_false_positive", "fp_pixels"])
    total["fp_rate"] = total["n_false_positive"] / total["n_empty_slices"].where(
        total["n_empty_slices"] > 0)
    return total[["class", "n_empty_slices", "n_false_positive", "fp_rate", "fp_pixels"]]


def combine_scores(parts: Sequence[ScoreResult], classes: Sequence[str],
                   conventions: MetricConventions) -> ScoreResult:
    """One :class:`ScoreResult` over every scan from per-scan results (the same means as
    scoring all scans at once: rows and volumes are pooled, not scan means)."""
    per_slice = pd.concat([p.per_slice for p in parts], ignore_index=True)
    per_case = pd.concat([p.per_case for p in parts], ignore_index=True)

    def mean(values: pd.Series) -> float:
        values = values.dropna()
        return float(values.mean()) if len(values) else float("nan")

    def score(d, h):
        return float(DICE_WEIGHT * d + HAUSDORFF_WEIGHT * (1.0 - h))

    d_rows = per_slice[per_slice["metric"] == "dice"]
    hd_rows = per_case[per_case["metric"] == "hausdorff"]
    per_class = {}
    for name in classes:
        dc = mean(d_rows.loc[d_rows["class"] == name, "value"])
        hc = mean(hd_rows.loc[hd_rows["class"] == name, "value"])
        per_class[name] = {
            "dice": dc, "hausdorff": hc, "score": score(dc, hc),
            **{k: int(sum(p.per_class[name][k] for p in parts))
               for k in ("n_slices", "n_empty", "n_volumes", "n_empty_volumes")}}
    d_all, hd_all = mean(d_rows["value"]), mean(hd_rows["value"])
    return ScoreResult(dice=d_all, hausdorff=hd_all, score=score(d_all, hd_all),
                       per_class=per_class, per_slice=per_slice, per_case=per_case,
                       n_empty=int(sum(p.n_empty for p in parts)),
                       n_empty_volumes=int(sum(p.n_empty_volumes for p in parts)),
                       conventions=conventions)
