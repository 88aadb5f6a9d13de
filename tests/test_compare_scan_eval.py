"""Per-scan results combined equal the results computed on all scans at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gitract.compare import _analysis as A
from gitract.compare._scan_eval import (
    _calibration_sums,
    combine_calibration,
    combine_counts,
    combine_empty,
    combine_scores,
)
from gitract.data.record import SliceStack
from gitract.metrics import MetricConventions, score_stacks
from gitract.postprocessing import (
    sweep_statistics,
    tune_thresholds,
    tuning_from_statistics,
)

CLASSES = ("large_bowel", "small_bowel", "stomach")


def _stacks(n=3, seed=0):
    gen = np.random.default_rng(seed)
    stacks, proba = [], {}
    for i in range(n):
        masks = np.zeros((5, 40, 48, 3), bool)
        masks[1:4, 10:25, 8:30, 0] = True
        masks[2:5, 20:35, 20:40, 1] = True
        if i != 1:
            masks[0:2, 5:15, 30:45, 2] = True
        image = gen.random((5, 40, 48)).astype(np.float32)
        s = SliceStack(image, masks, CLASSES, (1.5, 1.5), tuple(f"case{i}_day1_slice_{k:04d}"
                       for k in range(5)), f"case{i}", "day1", tuple(range(5)))
        stacks.append(s)
        noise = gen.random(masks.shape).astype(np.float32)
        proba[s.key] = np.clip(0.4 * masks + 0.6 * noise, 0, 1).astype(np.float32)
    return stacks, proba


@pytest.mark.parametrize("conventions", [MetricConventions(),
                                         MetricConventions(dice_both_empty=1.0)])
def test_scores_and_tables_combine_exactly(conventions):
    stacks, proba = _stacks()
    masks = {k: p > 0.5 for k, p in proba.items()}
    whole = score_stacks(stacks, masks, conventions=conventions)
    parts = [score_stacks([s], {s.key: masks[s.key]}, conventions=conventions) for s in stacks]
    combined = combine_scores(parts, CLASSES, conventions)
    assert combined.dice == pytest.approx(whole.dice, abs=1e-12)
    assert combined.hausdorff == pytest.approx(whole.hausdorff, abs=1e-12)
    assert combined.score == pytest.approx(whole.score, abs=1e-12)
    for cls in CLASSES:
        for key, value in whole.per_class[cls].items():
            assert combined.per_class[cls][key] == pytest.approx(value, nan_ok=True), (cls, key)
    assert 0.2 < whole.dice < 0.95  # neither trivial nor hopeless
    assert combined.n_empty == whole.n_empty
    pd.testing.assert_frame_equal(combined.per_slice, whole.per_slice)

    cal = combine_calibration([_calibration_sums(A.calibration([s], proba)) for s in stacks])
    ref = A.calibration(stacks, proba)
    pd.testing.assert_frame_equal(cal, ref, check_exact=False, rtol=1e-9)
    conf = combine_counts([A.block_confusion([s], masks) for s in stacks], ["true", "predicted"],
                          ["count"])
    pd.testing.assert_frame_equal(conf, A.block_confusion(stacks, masks))
    empty = combine_empty([A.empty_slice_behaviour([s], masks) for s in stacks])
    pd.testing.assert_frame_equal(empty, A.empty_slice_behaviour(stacks, masks), check_dtype=False)


def test_tuning_from_per_scan_sums_equals_tuning_on_all_scans():
    stacks, proba = _stacks(seed=1)
    whole = tune_thresholds(proba, stacks, min_sizes=(0, 16), hausdorff_max_side=None)
    stats = pd.concat([sweep_statistics(proba[s.key], s, min_sizes=(0, 16)) for s in stacks])
    summed = tuning_from_statistics(stats, CLASSES, keys=[s.key for s in stacks])
    assert summed.thresholds == whole.thresholds and summed.min_sizes == whole.min_sizes
    pd.testing.assert_frame_equal(summed.sweep, whole.sweep)
    # Summing is what makes it streamable: a single scan's table has the sweep's shape.
    one = sweep_statistics(proba[stacks[0].key], stacks[0], grid=[0.5], min_sizes=(0,))
    assert list(one.columns) == ["class", "threshold", "min_size", "dice_sum", "dice_n",
                                 "hd_sum", "hd_n"] and len(one) == 3
