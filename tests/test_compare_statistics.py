"""A run's statistics from its tables: intervals, paired verdicts, convergence, report text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gitract.compare._report_statistics import (
    best_lines,
    comparison_sentence,
    converged_cell,
    interval_text,
    paired_section,
)
from gitract.compare._statistics import convergence, run_statistics, track_convergence
from gitract.metrics import MIN_PAIRED_CASES

CLASSES = ("large_bowel", "stomach")


def _tables(dice_by_track: dict[str, np.ndarray], *, n_slices: int = 5, hausdorff=0.3):
    """Long-format per-slice and per-case tables: case ``i`` of a track has Dice
    ``dice[i]`` on every (slice, class) row and Hausdorff ``hausdorff`` on each volume;
    cases alternate between folds 0 and 1."""
    slices, volumes = [], []
    for model, dice in dice_by_track.items():
        for i, d in enumerate(dice):
            for cls in CLASSES:
                for s in range(n_slices):
                    slices.append({"case": f"case{i}", "key": f"case{i}_day1",
                                   "id": f"case{i}_day1_slice_{s:04d}", "class": cls,
                                   "metric": "dice", "value": d, "model": model,
                                   "fold": i % 2})
                volumes.append({"case": f"case{i}", "key": f"case{i}_day1", "class": cls,
                                "metric": "hausdorff", "value": hausdorff, "model": model,
                                "fold": i % 2})
    return pd.DataFrame(slices), pd.DataFrame(volumes)


# ----------------------------------------------------------------------------- convergence
@pytest.mark.parametrize(("curve", "want"), [
    ([0.1, 0.4, 0.55, 0.6, 0.6, 0.6, 0.601, 0.6], "yes"),      # flat end
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], "no"),           # still rising
    ([0.1, 0.6, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45], "yes"),       # falling end: no gain left
    ([0.1, 0.2, np.nan, 0.3], "n/a"),                           # 3 points: no window
    ([], "n/a"),
])
def test_convergence_rule(curve, want):
    assert convergence(curve)["converged"] == want


def test_convergence_window_is_the_last_quarter_with_at_least_three_points():
    res = convergence(np.r_[np.linspace(0, 1, 12), np.ones(4)])
    assert res["window"] == 4 and res["n_points"] == 16 and res["gain"] == 0.0
    assert convergence(np.linspace(0, 1, 5))["window"] == 3
    # A gain within the tolerance (1% of the best value) still counts as levelled off.
    assert convergence([0.5, 1.0, 1.0, 1.005, 1.0])["converged"] == "yes"
    assert convergence([0.5, 1.0, 1.0, 1.05, 1.0])["converged"] == "no"


def test_track_convergence_prefers_validation_dice_and_needs_every_fold():
    rows = []
    for fold, dice in ((0, [0.1, 0.5, 0.6, 0.6, 0.6, 0.6]), (1, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])):
        rows += [{"model": "unet", "fold": fold, "epoch": e + 1, "train_loss": 1.0,
                  "val_loss": 1.0 - e * 0.1, "val_dice": d} for e, d in enumerate(dice)]
    # The CNN records only a loss: minus the loss is its curve (a flat end here).
    rows += [{"model": "cnn", "fold": 0, "epoch": e + 1, "train_loss": 1.0, "val_loss": v}
             for e, v in enumerate([1.0, 0.5, 0.4, 0.4, 0.4, 0.4])]
    conv = track_convergence(pd.DataFrame(rows))
    assert conv["unet"]["converged"] == "no"  # fold 1 still rising
    assert [f["converged"] for f in conv["unet"]["folds"]] == ["yes", "no"]
    assert conv["unet"]["folds"][0]["curve"] == "val_dice"
    assert conv["cnn"] == {"converged": "yes", "folds": [
        {"fold": 0, "curve": "-val_loss", "converged": "yes", "gain": pytest.approx(0.0),
         "n_points": 6, "window": 3}]}
    assert track_convergence(pd.DataFrame()) == {}
    assert converged_cell({"convergence": conv}, "cnn") == "yes"
    assert converged_cell({"convergence": conv}, "rf", deep=False) == "–"
    assert converged_cell({}, "unet") == "n/a"


# --------------------------------------------------------------- intervals and comparisons
def _stats(dice_by_track, **kw):
    per_slice, per_case = _tables(dice_by_track)
    return run_statistics(per_slice, per_case, tracks=list(dice_by_track), seed=0,
                          n_resamples=kw.pop("n_resamples", 500), **kw)


def test_point_estimates_pool_every_case_of_every_fold():
    dice = np.linspace(0.2, 0.9, 8)
    stats = _stats({"a": dice})
    assert stats["n_cases"] == 8
    iv = stats["tracks"]["a"]
    assert iv["dice"]["estimate"] == pytest.approx(dice.mean())
    assert iv["score"]["estimate"] == pytest.approx(0.4 * dice.mean() + 0.6 * 0.7)
    assert iv["dice"]["low"] < dice.mean() < iv["dice"]["high"]
    assert iv["per_class"]["stomach"]["dice"] == pytest.approx(dice.mean())


def test_a_track_against_itself_is_not_distinguishable():
    dice = np.linspace(0.2, 0.9, 8)
    stats = _stats({"a": dice, "copy": dice.copy()})
    row = stats["comparisons"]["score"]["tracks"]["copy"]
    assert row["difference"]["score"] == {"estimate": 0.0, "low": 0.0, "high": 0.0}
    assert row["distinguishable"] is False
    assert "every case scores the same" in row["wilcoxon"]["reason"]
    line = comparison_sentence(stats, "score", "Highest competition score")
    assert "not distinguishable** from copy (difference 0.000, 95% CI 0.000 to 0.000)" in line


def test_a_clearly_better_track_is_named_with_its_interval():
    gen = np.random.default_rng(0)
    dice = gen.uniform(0.2, 0.6, 8)
    stats = _stats({"worse": dice, "better": dice + 0.3,
                    "close": dice + 0.3 + np.where(np.arange(8) % 2, 0.02, -0.03)})
    comp = stats["comparisons"]["score"]
    assert comp["reference"] == "better"
    assert comp["tracks"]["worse"]["distinguishable"] is True
    assert comp["tracks"]["worse"]["difference"]["score"]["low"] > 0
    assert comp["tracks"]["worse"]["wilcoxon"]["pvalue"] == pytest.approx(2 / 2**8)
    assert comp["tracks"]["close"]["distinguishable"] is False
    line = comparison_sentence(stats, "score", "Highest competition score")
    assert line.startswith("- Highest competition score: better (")
    assert "**not distinguishable** from close (difference 0.002" in line
    assert "above worse (paired 95% intervals exclude 0)" in line
    table = "\n".join(paired_section(stats))
    assert "paired case-level bootstrap 95% interval (500 resamples, seed 0:" in table
    assert "| worse | " in table and "better higher" in table
    assert "| close | " in table and "| not distinguishable |" in table


def test_too_few_cases_claim_no_difference():
    dice = np.linspace(0.2, 0.5, MIN_PAIRED_CASES - 1)
    stats = _stats({"a": dice + 0.4, "b": dice})
    comp = stats["comparisons"]["score"]
    assert comp["enough_cases"] is False
    assert comp["tracks"]["b"]["difference"]["score"]["low"] > 0  # reported, not claimed
    assert comp["tracks"]["b"]["distinguishable"] is False
    lines = best_lines(stats, list(CLASSES))
    assert "no track is declared better" in lines[0]
    assert "| too few cases |" in "\n".join(paired_section(stats))


def test_statistics_are_reproducible_and_empty_tables_give_none():
    dice = {"a": np.linspace(0.2, 0.9, 7), "b": np.linspace(0.3, 0.6, 7)}
    assert _stats(dice) == _stats(dice)
    empty = run_statistics(pd.DataFrame(), pd.DataFrame(), tracks=["a"], seed=0)
    assert empty["tracks"] == {} and empty["comparisons"] == {}


def test_interval_text():
    assert interval_text({"estimate": 0.4171, "low": 0.381, "high": 0.452}) == "0.417 [0.38, 0.45]"
    assert interval_text({"estimate": 0.5, "low": None, "high": None}) == "0.500"
    assert interval_text(None) == "n/a"
