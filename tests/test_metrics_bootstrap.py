"""Case-level bootstrap of the competition metric and paired tests between two tracks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gitract.constants import CLASSES
from gitract.data.record import SliceStack
from gitract.metrics import (
    CaseTotals,
    bootstrap_interval,
    bootstrap_weights,
    case_totals,
    case_totals_by,
    case_values,
    paired_bootstrap,
    paired_wilcoxon,
    score_stacks,
    weighted_metrics,
)


def _totals(dice, hausdorff, *, rows=4) -> CaseTotals:
    """Cases with ``rows`` Dice rows of value ``dice[i]`` and one volume of ``hausdorff[i]``."""
    dice, hausdorff = np.asarray(dice, float), np.asarray(hausdorff, float)
    n = dice.size
    return CaseTotals(tuple(f"case{i}" for i in range(n)), dice * rows, np.full(n, rows, float),
                      hausdorff, np.ones(n))


def _scored_cases(seed: int, n_cases: int = 3):
    """score_stacks on random masks of ``n_cases`` patients, some with two days."""
    gen = np.random.default_rng(seed)
    truth, pred = [], {}
    for k in range(n_cases):
        for day in ("day1", "day2")[: 1 + k % 2]:
            shape = (int(gen.integers(2, 5)), 8, 7, len(CLASSES))
            t, p = gen.random(shape) < 0.3, gen.random(shape) < 0.3
            t[0, ..., 0] = p[0, ..., 0] = False  # both-empty rows: NaN under the defaults
            stack = SliceStack(image=np.zeros(shape[:3], np.float32), masks=t, classes=CLASSES,
                               spacing=(1.5, 1.5), case=f"case{k}", day=day,
                               ids=tuple(f"case{k}_{day}_slice_{i + 1:04d}"
                                         for i in range(shape[0])))
            truth.append(stack)
            pred[stack.key] = p
    return score_stacks(truth, pred)


@pytest.mark.parametrize("seed", range(3))
def test_weights_of_ones_reproduce_score_stacks(seed):
    result = _scored_cases(seed)
    assert result.per_slice["value"].isna().any()  # NaN rows must be left out, not zeros
    totals = case_totals(result.per_slice, result.per_case)
    point = weighted_metrics(totals, np.ones(totals.n_cases))
    assert float(point["dice"]) == pytest.approx(result.dice, abs=1e-12)
    assert float(point["hausdorff"]) == pytest.approx(result.hausdorff, abs=1e-12)
    assert float(point["score"]) == pytest.approx(result.score, abs=1e-12)
    interval = bootstrap_interval(totals, n_resamples=200, random_state=0)
    assert interval["score"].estimate == pytest.approx(result.score, abs=1e-12)


def test_identical_cases_give_a_zero_width_interval():
    iv = bootstrap_interval(_totals([0.6] * 5, [0.2] * 5), n_resamples=300, random_state=0)
    for metric, want in (("dice", 0.6), ("hausdorff", 0.2), ("score", 0.4 * 0.6 + 0.6 * 0.8)):
        assert iv[metric].low == pytest.approx(want) == iv[metric].high
        assert iv[metric].estimate == pytest.approx(want)


def test_two_cases_interval_lies_between_the_case_values():
    totals = _totals([0.2, 0.8], [0.5, 0.1])
    own = case_values(totals)["score"]
    iv = bootstrap_interval(totals, n_resamples=500, random_state=1)["score"]
    assert own.min() - 1e-12 <= iv.low <= iv.estimate <= iv.high <= own.max() + 1e-12
    assert iv.estimate == pytest.approx(0.4 * 0.5 + 0.6 * (1 - 0.3))
    # Three distinct resamples (aa, ab, bb): the 95% interval reaches both case values.
    assert iv.low == pytest.approx(own.min()) and iv.high == pytest.approx(own.max())


def test_bootstrap_is_reproducible_with_the_seed():
    totals = _totals(np.linspace(0.1, 0.9, 9), np.linspace(0.5, 0.1, 9))
    a = bootstrap_interval(totals, n_resamples=400, random_state=3)
    b = bootstrap_interval(totals, n_resamples=400, random_state=3)
    c = bootstrap_interval(totals, n_resamples=400, random_state=4)
    assert a == b
    assert a["score"].low != c["score"].low or a["score"].high != c["score"].high


def test_weights_draw_each_case_count_times():
    w = bootstrap_weights(7, n_resamples=5000, random_state=0)
    assert w.shape == (5000, 7) and (w.sum(axis=1) == 7).all()
    # Each case is drawn once per resample on average.
    np.testing.assert_allclose(w.mean(axis=0), 1.0, atol=0.05)


def test_paired_bootstrap_of_a_track_with_itself_is_zero():
    totals = _totals(np.linspace(0.1, 0.9, 8), np.linspace(0.4, 0.2, 8))
    diff = paired_bootstrap(totals, totals, n_resamples=300, random_state=0)
    for iv in diff.values():
        assert iv.estimate == 0.0 and iv.low == 0.0 and iv.high == 0.0
        assert not iv.excludes(0.0)


def test_a_clear_difference_excludes_zero_and_a_noisy_one_does_not():
    gen = np.random.default_rng(0)
    base = gen.uniform(0.2, 0.7, 10)
    a = _totals(base + 0.2, np.full(10, 0.3))
    better = paired_bootstrap(a, _totals(base, np.full(10, 0.3)), random_state=0)
    assert better["score"].excludes(0.0) and better["score"].low > 0
    assert better["dice"].estimate == pytest.approx(0.2)
    # Differences of either sign around zero: the interval holds 0.
    noisy = _totals(base + np.where(np.arange(10) % 2, 0.05, -0.05), np.full(10, 0.3))
    same = paired_bootstrap(_totals(base, np.full(10, 0.3)), noisy, random_state=0)["score"]
    assert same.low < 0 < same.high


def test_paired_bootstrap_needs_the_same_cases():
    with pytest.raises(ValueError, match="same cases"):
        paired_bootstrap(_totals([0.1, 0.2], [0.1, 0.1]), _totals([0.1], [0.1]))


def test_case_totals_pairs_tracks_on_a_given_case_list():
    rows = pd.DataFrame({"case": ["b", "b"], "metric": "dice", "value": [0.5, np.nan]})
    vols = pd.DataFrame({"case": ["b"], "metric": "hausdorff", "value": [0.25]})
    t = case_totals(rows, vols, cases=["a", "b"])
    assert t.cases == ("a", "b")
    assert t.dice_sum.tolist() == [0.0, 0.5] and t.dice_count.tolist() == [0.0, 1.0]
    values = case_values(t)
    assert math.isnan(values["score"][0]) and values["score"][1] == pytest.approx(0.65)
    with pytest.raises(ValueError, match=r"\['b'\]"):
        case_totals(rows, vols, cases=["a"])
    with pytest.raises(ValueError, match="weights"):
        weighted_metrics(t, np.ones(3))


def test_wilcoxon_says_why_there_is_no_p_value():
    same = paired_wilcoxon([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert math.isnan(same.pvalue) and "same" in same.reason
    few = paired_wilcoxon([0.5, 0.6, 0.7], [0.4, 0.6, 0.5])
    assert math.isnan(few.pvalue) and few.n == 2 and "only 2" in few.reason
    gone = paired_wilcoxon([np.nan, np.nan], [0.1, 0.2])
    assert "no case" in gone.reason


def test_wilcoxon_on_a_consistent_difference():
    a = np.linspace(0.3, 0.8, 8)
    res = paired_wilcoxon(a + 0.1 + np.arange(8) * 0.001, a)
    assert res.reason is None and res.n == 8
    assert res.pvalue == pytest.approx(2 / 2**8)  # exact: every difference has one sign


@pytest.mark.parametrize("kwargs", [{"n_resamples": 0}, {"confidence": 1.0}])
def test_bad_parameters_are_named(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        bootstrap_interval(_totals([0.1], [0.1]), **kwargs)


def test_grouped_totals_equal_totals_of_each_group():
    gen = np.random.default_rng(0)
    n = 60
    rows = pd.DataFrame({"case": gen.choice(["c1", "c2", "c3"], n),
                         "model": gen.choice(["a", "b"], n), "class": gen.choice(["x", "y"], n),
                         "metric": gen.choice(["dice", "iou"], n), "value": gen.random(n)})
    rows.loc[::7, "value"] = np.nan
    vols = rows.assign(metric="hausdorff").iloc[::3]
    vols = vols[~((vols["model"] == "b") & (vols["class"] == "y"))]  # a group with no volume
    grouped = case_totals_by(rows, vols, by=("model", "class"))
    assert set(grouped) == {(m, c) for m in "ab" for c in "xy"}
    for (m, c), totals in grouped.items():
        want = case_totals(rows[(rows["model"] == m) & (rows["class"] == c)],
                           vols[(vols["model"] == m) & (vols["class"] == c)],
                           cases=["c1", "c2", "c3"])
        assert totals.cases == want.cases
        for field in ("dice_sum", "dice_count", "hausdorff_sum", "hausdorff_count"):
            np.testing.assert_allclose(getattr(totals, field), getattr(want, field))
    assert grouped[("b", "y")].hausdorff_count.sum() == 0
    assert set(case_totals_by(rows, vols, by=("model",))) == {("a",), ("b",)}
