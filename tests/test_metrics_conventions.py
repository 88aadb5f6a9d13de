"""Metric presets: ``mlebench`` against a direct implementation, validation, the CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import directed_hausdorff

from gitract.cli import main
from gitract.data.kaggle import kaggle_png_name, write_kaggle_png, write_train_csv
from gitract.data.record import DataError, SliceStack
from gitract.data.rle import rle_encode
from gitract.metrics import (
    CONVENTIONS,
    MERGED_CLASS,
    MetricConventions,
    hausdorff_3d,
    score_stacks,
)

CLASSES = ("large_bowel", "small_bowel", "stomach")
S, H, W = 3, 8, 9
MLEBENCH = MetricConventions.preset("mlebench")


# ------------------------------------------------------------------ the reference
def _reference_hausdorff(p: np.ndarray, t: np.ndarray, guard: float | None) -> float:
    """As the description of MLE-bench's grader: NaN both empty, 0 identical, 1 one
    empty, 1 when pred > guard * truth voxels, else the normalised distance."""
    if not p.any() and not t.any():
        return math.nan
    if np.array_equal(p, t):
        return 0.0
    if not p.any() or not t.any():
        return 1.0
    if guard is not None and p.sum() > guard * t.sum():
        return 1.0
    shape = np.asarray(t.shape, dtype=float)
    x, y = np.argwhere(p) / shape, np.argwhere(t) / shape
    return max(directed_hausdorff(x, y)[0], directed_hausdorff(y, x)[0]) / math.sqrt(3)


def mlebench_reference(truth: dict, pred: dict) -> tuple[float, float, dict]:
    """``(dice, hausdorff, hausdorff by key)``: Dice per (slice, class) with both-empty
    rows left out; Hausdorff on the classes OR-merged per case-day, 10x guard, nanmean."""
    dice_rows, hd = [], {}
    for key, t in truth.items():
        p = pred[key]
        for s in range(t.shape[0]):
            for c in range(t.shape[3]):
                a, b = p[s, :, :, c], t[s, :, :, c]
                total = int(a.sum()) + int(b.sum())
                if total:
                    dice_rows.append(2 * int((a & b).sum()) / total)
        hd[key] = _reference_hausdorff(p.any(axis=3), t.any(axis=3), 10.0)
    return float(np.mean(dice_rows)), float(np.nanmean(list(hd.values()))), hd


# ------------------------------------------------------------------ hand-made volumes
def _volumes() -> tuple[dict, dict]:
    """Case-days that exercise each rule of the preset (see the comments)."""
    truth, pred = {}, {}

    def new():
        return np.zeros((S, H, W, 3), bool), np.zeros((S, H, W, 3), bool)

    # Merged classes: small bowel missed, a false-positive stomach voxel near it.
    t, p = new()
    t[1, 2:4, 2:4, 0] = p[1, 2:4, 2:4, 0] = True
    t[1, 5:7, 5:7, 1] = True
    p[2, 5, 6, 2] = True
    truth["case1_day1"], pred["case1_day1"] = t, p
    # Guard fires: 12 predicted voxels for 1 true one (the true one among them).
    t, p = new()
    t[0, 4, 4, 2] = True
    p[0, 3:7, 3:6, 2] = True
    truth["case2_day1"], pred["case2_day1"] = t, p
    # Guard does not fire at exactly 10 times: the distance is computed.
    t, p = new()
    t[2, 1, 1, 0] = True
    p[2, 1, 1:6, 0] = True
    p[2, 2, 1:6, 1] = True
    truth["case3_day1"], pred["case3_day1"] = t, p
    # Both empty everywhere: left out of both means.
    truth["case4_day1"], pred["case4_day1"] = new()
    # Prediction empty: Hausdorff 1.
    t, p = new()
    t[0, 0, 0, 1] = True
    truth["case5_day1"], pred["case5_day1"] = t, p
    # The classes swapped: merged volumes are identical, so Hausdorff 0 (Dice 0).
    t, p = new()
    t[1, 3:5, 3:5, 0] = True
    p[1, 3:5, 3:5, 1] = True
    truth["case6_day1"], pred["case6_day1"] = t, p
    return truth, pred


def _stacks(truth: dict) -> list[SliceStack]:
    out = []
    for key, t in truth.items():
        case, day = key.split("_")
        out.append(SliceStack(
            image=np.zeros(t.shape[:3], np.float32), masks=t, classes=CLASSES,
            spacing=(1.5, 1.5), case=case, day=day,
            ids=tuple(f"{key}_slice_{s + 1:04d}" for s in range(t.shape[0]))))
    return out


def test_hand_made_volumes_cover_each_rule():
    truth, pred = _volumes()
    _, _, hd = mlebench_reference(truth, pred)
    assert hd["case2_day1"] == 1.0  # guard
    assert 0 < hd["case3_day1"] < 1  # exactly 10x: no guard
    assert math.isnan(hd["case4_day1"])
    assert hd["case5_day1"] == 1.0 and hd["case6_day1"] == 0.0
    assert 0 < hd["case1_day1"] < 0.5  # a missed class costs little once merged


def test_mlebench_matches_the_direct_implementation():
    truth, pred = _volumes()
    result = score_stacks(_stacks(truth), pred, conventions=MLEBENCH)
    dice, hausdorff, by_key = mlebench_reference(truth, pred)
    assert result.dice == pytest.approx(dice, abs=1e-12)
    assert result.hausdorff == pytest.approx(hausdorff, abs=1e-12)
    assert result.score == pytest.approx(0.4 * dice + 0.6 * (1 - hausdorff), abs=1e-12)
    rows = result.per_case[result.per_case["metric"] == "hausdorff"]
    assert set(rows["class"]) == {MERGED_CLASS} and len(rows) == len(truth)
    for key, value in zip(rows["key"], rows["value"], strict=True):
        if math.isnan(by_key[key]):
            assert math.isnan(value)
        else:
            assert value == pytest.approx(by_key[key], abs=1e-12)
    for stats in result.per_class.values():  # no per-class Hausdorff once merged
        assert math.isnan(stats["hausdorff"]) and math.isnan(stats["score"])


def test_presets_differ_where_a_class_is_missed():
    truth, pred = _volumes()
    keys = ["case1_day1"]
    stacks = [s for s in _stacks(truth) if s.key in keys]
    default = score_stacks(stacks, pred)
    merged = score_stacks(stacks, pred, conventions=MLEBENCH)
    assert default.dice == merged.dice
    assert default.hausdorff == pytest.approx(2 / 3)  # 0, 1 (missed), 1 (false positive)
    assert merged.hausdorff == pytest.approx(mlebench_reference(
        {k: truth[k] for k in keys}, pred)[1], abs=1e-12)
    assert merged.score - default.score > 0.2


@pytest.mark.parametrize("seed", range(6))
def test_mlebench_matches_on_random_volumes(seed):
    gen = np.random.default_rng(seed)
    truth, pred = {}, {}
    for k in range(3):
        t = gen.random((int(gen.integers(2, 5)), 7, 6, 3)) < gen.choice([0.01, 0.15])
        p = gen.random(t.shape) < gen.choice([0.02, 0.15, 0.9])  # 0.9: the guard fires
        t[..., 2] = False
        truth[f"case{k}_day1"], pred[f"case{k}_day1"] = t, p
    result = score_stacks(_stacks(truth), pred, conventions=MLEBENCH)
    dice, hausdorff, _ = mlebench_reference(truth, pred)
    assert result.dice == pytest.approx(dice, abs=1e-12)
    assert result.hausdorff == pytest.approx(hausdorff, abs=1e-12)


def test_guard_alone_applies_per_class():
    truth, pred = _volumes()
    stacks = [s for s in _stacks(truth) if s.key == "case2_day1"]
    guarded = score_stacks(stacks, pred, conventions=MetricConventions(hausdorff_size_guard=10))
    plain = score_stacks(stacks, pred)
    assert guarded.per_class["stomach"]["hausdorff"] == 1.0
    assert plain.per_class["stomach"]["hausdorff"] < 1.0


def test_hausdorff_size_guard_boundary():
    t = np.zeros((2, 4, 4), bool)
    t[0, 0, 0] = True
    p = t.copy()
    p[0, 0, 1:] = True  # 4 voxels for 1
    assert hausdorff_3d(p, t, size_guard=3.0) == 1.0
    assert hausdorff_3d(p, t, size_guard=4.0) == hausdorff_3d(p, t) < 1.0
    assert hausdorff_3d(t, t, size_guard=0.5) == 0.0  # identical masks come first


# ------------------------------------------------------------------ the presets
def test_default_preset_is_the_old_behaviour():
    assert MetricConventions.preset("default") == MetricConventions()
    assert repr(MetricConventions()) == (
        "MetricConventions(dice_both_empty=nan, hausdorff_both_empty=nan)")
    assert set(CONVENTIONS) == {"default", "mlebench"}
    assert MLEBENCH.hausdorff_merge_classes and MLEBENCH.hausdorff_size_guard == 10.0
    assert MLEBENCH != MetricConventions() and hash(MLEBENCH) == hash(
        MetricConventions(hausdorff_merge_classes=True, hausdorff_size_guard=10))


def test_describe_names_the_preset():
    assert MetricConventions().describe().startswith("Conventions: default (gitract).")
    text = MLEBENCH.describe()
    assert text.startswith("Conventions: mlebench (MLE-bench")
    assert "OR-merged" in text and "more than 10 times" in text
    custom = replace(MLEBENCH, dice_both_empty=0.0)
    assert custom.preset_name is None and custom.describe().startswith("Conventions: custom.")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"dice_both_empty": 2.0}, "dice_both_empty"),
        ({"hausdorff_both_empty": "nan"}, "hausdorff_both_empty"),
        ({"hausdorff_merge_classes": 1}, "hausdorff_merge_classes"),
        ({"hausdorff_size_guard": 0}, "hausdorff_size_guard"),
        ({"hausdorff_size_guard": math.inf}, "hausdorff_size_guard"),
        ({"hausdorff_size_guard": True}, "hausdorff_size_guard"),
    ],
)
def test_invalid_fields_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MetricConventions(**kwargs)


def test_from_mapping_and_the_comparison_config():
    from gitract.compare._run import _conventions
    from gitract.config import ExperimentConfig

    assert MetricConventions.from_mapping({"preset": "mlebench"}) == MLEBENCH
    assert MetricConventions.from_mapping(None) == MetricConventions()
    over = MetricConventions.from_mapping({"preset": "mlebench", "hausdorff_size_guard": None})
    assert over.hausdorff_merge_classes and over.hausdorff_size_guard is None
    with pytest.raises(ValueError, match="unknown metric conventions 'grader'"):
        MetricConventions.preset("grader")
    assert _conventions(ExperimentConfig(metrics={"preset": "mlebench"})) == MLEBENCH
    with pytest.raises(DataError, match="config metrics: .*'dice_empty'"):
        _conventions(ExperimentConfig(metrics={"dice_empty": 0.0}))


# ------------------------------------------------------------------ the CLI
def _write_kaggle(root, truth: dict, pred: dict):
    rows, sub = [], []
    for key, t in truth.items():
        case, _ = key.split("_")
        scans = root / "train" / case / key / "scans"
        for s in range(t.shape[0]):
            image = np.full((H, W), 100, np.uint16)
            image[0, 0] = 200  # not constant
            write_kaggle_png(scans / kaggle_png_name(s + 1, (H, W), (1.5, 1.5)), image)
            sid = f"{key}_slice_{s + 1:04d}"
            for c, cls in enumerate(CLASSES):
                rows.append((sid, cls, rle_encode(t[s, :, :, c])))
                sub.append((sid, cls, rle_encode(pred[key][s, :, :, c])))
    write_train_csv(pd.DataFrame(rows, columns=["id", "class", "segmentation"]),
                    root / "train.csv")
    pd.DataFrame(sub, columns=["id", "class", "predicted"]).to_csv(root / "sub.csv", index=False)


def test_score_cli_mlebench_matches_and_states_the_preset(tmp_path, capsys):
    truth, pred = _volumes()
    _write_kaggle(tmp_path, truth, pred)
    argv = ["score", "--data-dir", str(tmp_path), "--pred", str(tmp_path / "sub.csv"), "--json"]
    assert main([*argv, "--conventions", "mlebench"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    dice, hausdorff, _ = mlebench_reference(truth, pred)
    assert summary["preset"] == "mlebench" and "Conventions: mlebench" in out
    assert summary["dice"] == pytest.approx(dice, abs=1e-12)
    assert summary["hausdorff"] == pytest.approx(hausdorff, abs=1e-12)
    assert summary["score"] == pytest.approx(0.4 * dice + 0.6 * (1 - hausdorff), abs=1e-12)
    assert main(argv) == 0
    out = capsys.readouterr().out
    default = json.loads(out.strip().splitlines()[-1])
    assert default["preset"] == "default" and "Conventions: default" in out
    assert default["hausdorff"] != pytest.approx(hausdorff)
    # An override of a preset field makes the conventions custom, and says so.
    assert main([*argv, "--conventions", "mlebench", "--dice-both-empty", "1"]) == 0
    assert "Conventions: custom." in capsys.readouterr().out


def test_score_cli_bad_override_is_one_error_line(tmp_path, capsys):
    truth, pred = _volumes()
    _write_kaggle(tmp_path, truth, pred)
    argv = ["score", "--data-dir", str(tmp_path), "--pred", str(tmp_path / "sub.csv"),
            "--dice-both-empty", "3"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "dice_both_empty" in err[0]


# ------------------------------------------------------------------ z from slice numbers
def test_slice_numbers_as_z_on_stacks_without_gaps_change_nothing():
    truth, pred = _volumes()
    stacks = _stacks(truth)
    for conventions in CONVENTIONS.values():
        a = score_stacks(stacks, pred, conventions=conventions)
        b = score_stacks(stacks, pred, conventions=conventions, hausdorff_z="slice_numbers")
        pd.testing.assert_frame_equal(a.per_case, b.per_case)
    with pytest.raises(ValueError, match="hausdorff_z"):
        score_stacks(stacks, pred, hausdorff_z="numbers")


def test_slice_numbers_as_z_place_a_sparse_stack():
    t = np.zeros((2, 4, 4, 3), bool)
    p = np.zeros_like(t)
    t[0, 0, 0, 0] = True
    p[1, 0, 0, 0] = True
    stack = replace(_stacks({"case1_day1": t})[0], slice_numbers=(3, 7))
    positions = score_stacks([stack], {stack.key: p}).hausdorff
    numbers = score_stacks([stack], {stack.key: p}, hausdorff_z="slice_numbers").hausdorff
    assert positions == pytest.approx(0.5 / math.sqrt(3))  # one position of 2 apart
    assert numbers == pytest.approx(4 / 5 / math.sqrt(3))  # 4 numbers apart in a span of 5
    bad = replace(stack, slice_numbers=(7, 3))
    with pytest.raises(ValueError, match="slice_numbers must increase"):
        score_stacks([bad], {stack.key: p}, hausdorff_z="slice_numbers")
