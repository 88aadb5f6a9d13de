"""Thresholds, small-component removal and the validation sweep."""

from __future__ import annotations

import numpy as np
import pytest

from gitract.data.record import SliceStack
from gitract.metrics import score_stacks
from gitract.postprocessing import (
    ThresholdTuning,
    apply_thresholds,
    remove_small_components,
    tune_thresholds,
)

CLASSES3 = ("large_bowel", "small_bowel", "stomach")


def _stack(masks: np.ndarray, key: str = "case1") -> SliceStack:
    s = masks.shape[0]
    return SliceStack(
        image=np.zeros(masks.shape[:3], np.float32), masks=masks, classes=CLASSES3,
        spacing=(1.0, 1.0), ids=tuple(f"{key}_day1_slice_{i:04d}" for i in range(s)),
        case=key, day="day1",
    )


def _blob_truth(shape=(3, 32, 32)) -> np.ndarray:
    masks = np.zeros((*shape, 3), bool)
    masks[:, 8:20, 6:18, 0] = True
    masks[1:, 20:28, 20:30, 1] = True
    masks[:2, 2:10, 22:30, 2] = True
    return masks


def test_apply_thresholds_shapes_and_strictness():
    proba = np.full((2, 4, 5, 3), 0.5, np.float32)
    proba[0, 0, 0] = [0.51, 0.3, 0.9]
    out = apply_thresholds(proba, [0.5, 0.2, 0.95])
    assert out.shape == proba.shape and out.dtype == bool
    assert out[0, 0, 0].tolist() == [True, True, False]
    assert out[..., 0].sum() == 1  # only the 0.51 pixel beats 0.5
    assert apply_thresholds(proba[1], 0.4).all()


def test_apply_thresholds_min_size_per_class_per_slice():
    proba = np.zeros((2, 8, 8, 2), np.float32)
    proba[0, 0, 0, :] = 1.0  # 1-pixel speck in both classes
    proba[0, 3:6, 3:6, :] = 1.0  # 9-pixel blob
    proba[1, 0:2, 0:2, 0] = 1.0  # 4-pixel blob in slice 1
    out = apply_thresholds(proba, [0.5, 0.5], min_size=[5, 0])
    assert out[0, ..., 0].sum() == 9 and out[1, ..., 0].sum() == 0
    assert out[0, ..., 1].sum() == 10  # class 1 untouched
    assert proba[0, 0, 0, 0] == 1.0  # input not modified


def test_remove_small_components_uses_8_connectivity():
    m = np.zeros((5, 5), bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True  # diagonal chain: one 8-connected component
    assert remove_small_components(m, min_size=3).sum() == 3
    assert remove_small_components(m, min_size=4).sum() == 0
    assert remove_small_components(m, min_size=0) is not m


@pytest.mark.parametrize(
    ("proba", "thresholds", "kwargs", "match"),
    [
        (np.zeros((4, 4)), 0.5, {}, "proba"),
        (np.zeros((4, 4, 3)), [0.5, 0.5], {}, "thresholds"),
        (np.zeros((4, 4, 3)), 0.5, {"min_size": [1, 2]}, "min_size"),
    ],
)
def test_apply_thresholds_errors(proba, thresholds, kwargs, match):
    with pytest.raises(ValueError, match=match):
        apply_thresholds(proba, thresholds, **kwargs)


def test_tune_recovers_per_class_thresholds():
    # Each class's map is its truth scaled so that only one band of thresholds separates
    # the organ from a background haze: class 0 needs t >= 0.3, class 2 needs t < 0.2.
    truth = _blob_truth()
    proba = np.zeros(truth.shape, np.float32)
    proba[..., 0] = np.where(truth[..., 0], 0.9, 0.3)
    proba[..., 1] = np.where(truth[..., 1], 0.6, 0.05)
    proba[..., 2] = np.where(truth[..., 2], 0.2, 0.0)
    tuning = tune_thresholds({"case1_day1": proba}, [_stack(truth)])
    assert tuning.thresholds[0] >= 0.3 and tuning.thresholds[0] < 0.9
    assert 0.05 <= tuning.thresholds[1] < 0.6
    assert tuning.thresholds[2] < 0.2
    # Perfect masks at the tuned values -> the real scorer agrees.
    result = score_stacks([_stack(truth)], {"case1_day1": tuning.apply(proba)})
    assert result.dice == pytest.approx(1.0) and result.hausdorff == pytest.approx(0.0)
    sweep = tuning.sweep
    assert set(sweep.columns) == {"class", "threshold", "min_size", "dice", "hausdorff", "score"}
    assert len(sweep) == 3 * 19
    assert tuning.keys == ("case1_day1",)


def test_tune_picks_min_size_that_removes_specks():
    truth = _blob_truth()
    proba = truth.astype(np.float32) * 0.8
    proba[:, 30, 0, 0] = 0.9  # far speck in every slice: wrecks the Hausdorff distance
    tuning = tune_thresholds({"case1_day1": proba}, [_stack(truth)], min_sizes=(0, 4))
    assert tuning.min_sizes[0] == 4
    assert tuning.min_sizes[1] == 0  # tie -> smallest size


def test_tune_sweep_matches_score_stacks_at_full_resolution():
    rng = np.random.default_rng(0)
    truth = _blob_truth()
    proba = np.clip(truth * 0.6 + rng.random(truth.shape) * 0.5, 0, 1).astype(np.float32)
    tuning = tune_thresholds({"case1_day1": proba}, [_stack(truth)], grid=[0.5],
                             hausdorff_max_side=None)
    ref = score_stacks([_stack(truth)], {"case1_day1": proba > 0.5})
    for name in CLASSES3:
        row = tuning.sweep[tuning.sweep["class"] == name].iloc[0]
        assert row["dice"] == pytest.approx(ref.per_class[name]["dice"])
        assert row["hausdorff"] == pytest.approx(ref.per_class[name]["hausdorff"])
        assert row["score"] == pytest.approx(ref.per_class[name]["score"])


def test_tune_pooled_hausdorff_close_to_exact():
    rng = np.random.default_rng(1)
    truth = np.zeros((4, 128, 128, 3), bool)
    truth[:, 30:70, 20:60, :] = True
    proba = np.clip(truth * 0.7 + rng.random(truth.shape) * 0.35, 0, 1).astype(np.float32)
    stacks = [_stack(truth)]
    exact = tune_thresholds({"case1_day1": proba}, stacks, grid=[0.5, 0.7], hausdorff_max_side=None)
    pooled = tune_thresholds({"case1_day1": proba}, stacks, grid=[0.5, 0.7], hausdorff_max_side=32)
    assert pooled.hausdorff_pool == 4
    np.testing.assert_allclose(pooled.sweep["hausdorff"], exact.sweep["hausdorff"], atol=4 / 128)


def test_tune_class_absent_everywhere_prefers_predicting_nothing():
    truth = _blob_truth()
    truth[..., 2] = False
    proba = truth.astype(np.float32)
    proba[..., 2] = 0.5  # haze everywhere
    tuning = tune_thresholds({"case1_day1": proba}, [_stack(truth)])
    assert tuning.thresholds[2] >= 0.5


def test_tune_errors():
    truth = _blob_truth()
    with pytest.raises(ValueError, match="at least one"):
        tune_thresholds({}, [])
    with pytest.raises(ValueError, match="no map"):
        tune_thresholds({}, [_stack(truth)])
    with pytest.raises(ValueError, match="shape"):
        tune_thresholds({"case1_day1": np.zeros((1, 2, 2, 3))}, [_stack(truth)])
    unlabelled = _stack(truth)
    unlabelled.masks = None
    with pytest.raises(ValueError, match="no masks"):
        tune_thresholds({"case1_day1": truth}, [unlabelled])


def test_fixed_tuning_and_to_dict():
    t = ThresholdTuning.fixed(CLASSES3, 0.4, 10)
    assert t.thresholds == (0.4, 0.4, 0.4) and t.min_sizes == (10, 10, 10)
    assert t.to_dict()["thresholds"] == [0.4, 0.4, 0.4]
