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
    line = comparison_sentence(stats, "score", "Competition score, reference")
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
    line = comparison_sentence(stats, "score", "Competition score, reference")
    assert line.startswith("- Competition score, reference: better (highest on test: ")
    assert "**not distinguishable** from close (difference 0.002" in line
    assert "above worse (paired 95% intervals exclude 0, Holm-adjusted p < 0.05)" in line
    # Two comparisons: the smaller p is doubled by Holm's correction.
    assert comp["tracks"]["worse"]["wilcoxon"]["pvalue_holm"] == pytest.approx(4 / 2**8)
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


# ------------------------------------------------ choices on validation, Holm's correction
def test_holm_adjustment_on_a_known_case():
    from gitract.metrics import holm_adjust

    # Sorted 0.005, 0.01, 0.03, 0.04 are multiplied by 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04,
    # then made non-decreasing: 0.02, 0.03, 0.06, 0.06.
    got = holm_adjust([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.9, 0.8]).tolist() == [1.0, 1.0]  # capped at 1
    assert np.isnan(holm_adjust([np.nan])).all() and holm_adjust([]).size == 0


def test_holm_correction_withdraws_a_claim_that_the_raw_test_would_make():
    dice = np.linspace(0.3, 0.6, 8)
    # Seven tracks each below the reference on all 8 cases: every raw p is 2/2**8 = 0.0078
    # (< 0.05) and every bootstrap interval excludes 0, but Holm over 7 gives 0.055.
    tracks = {"ref": dice + 0.2, **{f"t{k}": dice + 0.01 * k for k in range(7)}}
    comp = _stats(tracks)["comparisons"]["score"]
    for row in comp["tracks"].values():
        assert row["excludes_zero"] and row["wilcoxon"]["pvalue"] == pytest.approx(2 / 2**8)
        assert row["wilcoxon"]["pvalue_holm"] == pytest.approx(7 * 2 / 2**8)
        assert row["distinguishable"] is False
    assert "Holm-adjusted" in "\n".join(paired_section(_stats(tracks)))


def test_the_reference_is_chosen_on_validation_not_on_test():
    dice = np.linspace(0.3, 0.6, 8)
    tracks = {"test_best": dice + 0.2, "val_best": dice}
    validation = {"test_best": {"score": 0.5, "dice": 0.4}, "val_best": {"score": 0.7,
                                                                       "dice": 0.6}}
    stats = _stats(tracks, validation=validation)
    comp = stats["comparisons"]["score"]
    assert comp["reference"] == "val_best" and comp["reference_rule"] == "validation"
    assert comp["validation"] == 0.7 and "test_best" in comp["tracks"]
    line = comparison_sentence(stats, "score", "Competition score, reference")
    assert line.startswith("- Competition score, reference: val_best (highest on validation, "
                           "0.700; test ")
    assert line.endswith("; **below** test_best on test (paired 95% intervals exclude 0, "
                         "Holm-adjusted p < 0.05).")
    assert "| val_best lower |" in "\n".join(paired_section(stats))
    assert "the test cases play no part in choosing it" in "\n".join(paired_section(stats))
    stats["best_on_validation_by_fold"] = ["val_best", "test_best"]  # folder_statistics' record
    assert ("Highest validation score in each fold: fold 0 val_best, fold 1 test_best."
            in "\n".join(paired_section(stats)))
    # Without a validation value for every track the rule falls back to test, and says so.
    stats = _stats(tracks, validation={"val_best": {"score": 0.7}})
    assert stats["comparisons"]["score"]["reference"] == "test_best"
    assert stats["comparisons"]["score"]["reference_rule"] == "test"


def test_validation_values_and_family_representatives_come_from_validation():
    from gitract.compare._report_tables import family_lines
    from gitract.compare._statistics import validation_values

    def track(kind, *fold_scores):
        return {"kind": kind, "folds": [{"validation": {"a": {"score": s, "dice": s - 0.2},
                                                        "b": {"score": s, "dice": s}}}
                                        for s in fold_scores]}

    tracks = {"rf": track("blocks", 0.6, 0.8), "lgbm": track("blocks", 0.5, 0.5),
              "unet": track("unet", 0.9, 0.9)}
    val = validation_values(tracks)
    assert val["rf"] == {"score": 0.7, "dice": pytest.approx(0.6), "dice:a": 0.5,
                         "dice:b": 0.7}
    # lgbm is best on test but rf on validation: rf represents the block family.
    lines = family_lines(tracks, {"rf": 0.55, "lgbm": 0.65, "unet": 0.7})
    assert lines == ["- By family, ranked by test score (point estimates; representative: "
                     "each family's track with the highest validation score): U-Net (unet, "
                     "0.700); classical block classifiers (rf, 0.550)."]


def test_three_readings_of_both_empty_rows_on_a_hand_made_case():
    from gitract.compare._report_statistics import empty_readings_section
    from gitract.compare._statistics import empty_row_readings

    # One case, four rows: Dice 0.8, 0.4 and two both-empty rows (NaN); Hausdorff 0.5.
    per_slice = pd.DataFrame({"case": "c1", "key": "c1_d1", "class": "stomach",
                              "metric": "dice", "value": [0.8, 0.4, np.nan, np.nan],
                              "model": "t", "id": [f"s{i}" for i in range(4)], "fold": 0})
    per_case = pd.DataFrame([{"case": "c1", "key": "c1_d1", "class": "stomach",
                              "metric": "hausdorff", "value": 0.5, "model": "t", "fold": 0}])
    got = empty_row_readings(per_slice, per_case, ["t"])["t"]
    assert got["n_rows"] == 4 and got["n_left_out"] == 2
    assert got["left_out"]["dice"] == pytest.approx(0.6)            # (0.8 + 0.4) / 2
    assert got["one"]["dice"] == pytest.approx(0.8)                 # (0.8 + 0.4 + 1 + 1) / 4
    assert got["zero"]["dice"] == pytest.approx(0.3)                # (0.8 + 0.4) / 4
    assert got["one"]["score"] == pytest.approx(0.4 * 0.8 + 0.6 * 0.5)
    text = "\n".join(empty_readings_section({"empty_readings": {"t": got}}))
    assert "| t | 2 of 4 | 0.600 | 0.800 | 0.300 | 0.540 | 0.620 | 0.420 |" in text
