"""Metrics against independent brute-force computations and the empty-mask conventions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gitract.data.record import SliceStack
from gitract.metrics import (
    MetricConventions,
    centroid_distance_mm,
    dice,
    hausdorff_3d,
    iou,
    score_stacks,
    score_volumes,
)

CLASSES = ("large_bowel", "small_bowel", "stomach")


# ---------------------------------------------------------------- brute force references
def _brute_dice(pred, truth):
    inter = n_p = n_t = 0
    for p, t in zip(pred.ravel().tolist(), truth.ravel().tolist(), strict=True):
        inter += p and t
        n_p += p
        n_t += t
    return None if n_p + n_t == 0 else 2 * inter / (n_p + n_t)


def _brute_hausdorff(pred, truth):
    """All pairwise distances in normalised coordinates, max-min both ways, / sqrt(3)."""
    shape = np.array(pred.shape, dtype=float)
    a = np.argwhere(pred) / shape
    b = np.argwhere(truth) / shape
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return max(d.min(axis=1).max(), d.min(axis=0).max()) / math.sqrt(pred.ndim)


def _random_pair(seed, shape=(4, 9, 7)):
    gen = np.random.default_rng(seed)
    dens_p, dens_t = gen.uniform(0.02, 0.5, size=2)
    return gen.random(shape) < dens_p, gen.random(shape) < dens_t


# ------------------------------------------------------------------------ single metrics
@pytest.mark.parametrize("seed", range(40))
def test_dice_and_iou_match_brute_force(seed):
    pred, truth = _random_pair(seed)
    ref = _brute_dice(pred, truth)
    assert dice(pred, truth) == pytest.approx(ref, abs=1e-12)
    assert iou(pred, truth) == pytest.approx(ref / (2 - ref), abs=1e-12)
    assert type(dice(pred, truth)) is float


METHODS = ["auto", "edt", "kdtree"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", range(60))
def test_hausdorff_matches_brute_force(seed, method):
    pred, truth = _random_pair(seed)
    got = hausdorff_3d(pred, truth, method=method)
    assert type(got) is float
    assert got == pytest.approx(_brute_hausdorff(pred, truth), abs=1e-12)
    assert 0.0 <= got <= 1.0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("shape", [(1, 5, 3), (6, 2, 11), (3, 8, 8)])
def test_hausdorff_sparse_masks_match_brute_force(seed, shape, method):
    """Few voxels far apart: the bounding-box crop and anisotropic sampling matter."""
    gen = np.random.default_rng(1000 + seed)
    pred, truth = (gen.random(shape) < 0.08 for _ in range(2))
    pred.flat[gen.integers(pred.size)] = True
    truth.flat[gen.integers(truth.size)] = True
    got = hausdorff_3d(pred, truth, method=method)
    assert got == pytest.approx(_brute_hausdorff(pred, truth), abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_hausdorff_ring_around_a_disc(method):
    """The farthest point of a disc from a surrounding ring is the disc's centre (interior)."""
    yy, xx = np.mgrid[:15, :15]
    r = np.hypot(yy - 7, xx - 7)
    ring = ((r >= 6) & (r < 7))[None]
    disc = (r <= 4)[None]
    got = hausdorff_3d(disc, ring, method=method)
    assert got == pytest.approx(_brute_hausdorff(disc, ring), abs=1e-12)


def test_hausdorff_method_is_checked():
    a, b = _random_pair(0)
    with pytest.raises(ValueError, match="method"):
        hausdorff_3d(a, b, method="fast")


def test_hausdorff_agrees_with_scipy_directed_hausdorff():
    from scipy.spatial.distance import directed_hausdorff

    pred, truth = _random_pair(7, shape=(5, 12, 10))
    a = np.argwhere(pred) / np.array(pred.shape)
    b = np.argwhere(truth) / np.array(truth.shape)
    ref = max(directed_hausdorff(a, b)[0], directed_hausdorff(b, a)[0]) / math.sqrt(3)
    assert hausdorff_3d(pred, truth) == pytest.approx(ref, abs=1e-12)


def test_hausdorff_opposite_corners_is_close_to_one():
    a = np.zeros((2, 3, 4), bool)
    b = np.zeros((2, 3, 4), bool)
    a[0, 0, 0] = b[-1, -1, -1] = True
    expected = math.sqrt((1 / 2) ** 2 + (2 / 3) ** 2 + (3 / 4) ** 2) / math.sqrt(3)
    assert hausdorff_3d(a, b) == pytest.approx(expected)


@pytest.mark.parametrize("metric", [dice, iou])
def test_overlap_edge_cases(metric):
    empty, full = np.zeros((3, 4, 5), bool), np.ones((3, 4, 5), bool)
    assert math.isnan(metric(empty, empty))
    assert metric(empty, empty, empty_score=1.0) == 1.0
    assert metric(empty, empty, empty_score=0.0) == 0.0
    assert metric(empty, full) == 0.0
    assert metric(full, empty) == 0.0
    assert metric(full, full) == 1.0
    some = _random_pair(3)[0]
    assert metric(some, some) == 1.0


def test_hausdorff_edge_cases():
    empty, full = np.zeros((3, 4, 5), bool), np.ones((3, 4, 5), bool)
    assert math.isnan(hausdorff_3d(empty, empty))
    assert hausdorff_3d(empty, empty, empty_score=0.0) == 0.0
    assert hausdorff_3d(empty, empty, empty_score=1.0) == 1.0
    assert hausdorff_3d(empty, full) == 1.0
    assert hausdorff_3d(full, empty) == 1.0
    assert hausdorff_3d(full, empty, one_empty=0.5) == 0.5
    assert hausdorff_3d(full, full) == 0.0
    some = _random_pair(4)[1]
    assert hausdorff_3d(some, some) == 0.0


def test_inputs_are_checked():
    a = np.zeros((2, 3, 4), bool)
    with pytest.raises(ValueError, match="shape"):
        dice(a, np.zeros((2, 3, 5), bool))
    with pytest.raises(ValueError, match="boolean"):
        hausdorff_3d(a.astype(float) + 0.5, a)
    assert dice(a.astype(np.uint8), a, empty_score=1.0) == 1.0  # 0/1 integers are accepted


def test_centroid_distance_mm():
    a = np.zeros((2, 6, 6), bool)
    b = np.zeros((2, 6, 6), bool)
    a[0, 1:3, 1:3] = True  # centroid (0, 1.5, 1.5)
    b[1, 4, 5] = True  # centroid (1, 4, 5)
    expected = math.sqrt((1 * 3.0) ** 2 + (2.5 * 1.5) ** 2 + (3.5 * 1.5) ** 2)
    assert centroid_distance_mm(a, b, (3.0, 1.5, 1.5)) == pytest.approx(expected)
    assert centroid_distance_mm(a[0], a[0], (1.5, 1.5)) == 0.0
    assert math.isnan(centroid_distance_mm(a, np.zeros_like(a), (3.0, 1.5, 1.5)))
    with pytest.raises(ValueError, match="spacing"):
        centroid_distance_mm(a, b, (1.5, 1.5))


# ----------------------------------------------------------------------- aggregation
def _stack(masks, case="case1", day="day1"):
    n = masks.shape[0]
    return SliceStack(
        image=np.zeros(masks.shape[:3], np.float32),
        masks=masks,
        classes=CLASSES,
        spacing=(1.5, 1.5),
        ids=tuple(f"{case}_{day}_slice_{i + 1:04d}" for i in range(n)),
        case=case,
        day=day,
    )


def _random_dataset(seed, n_stacks=3):
    gen = np.random.default_rng(seed)
    truth, pred = [], {}
    for k in range(n_stacks):
        shape = (int(gen.integers(2, 5)), 8, 7, 3)
        t = gen.random(shape) < 0.3
        p = gen.random(shape) < 0.3
        # Some empty channels and slices to exercise the conventions.
        t[0, ..., 0] = p[0, ..., 0] = False
        t[..., 2] = False
        if k == 0:
            p[..., 2] = False
        s = _stack(t, case=f"case{k}", day="day2")
        truth.append(s)
        pred[s.key] = p
    return truth, pred


def _reference_result(truth, pred, dice_both_empty=None, hd_both_empty=None):
    """Means over rows with python loops and the brute-force metrics."""
    d_rows, h_rows = [], []
    for s in truth:
        p_all = pred[s.key]
        for c, name in enumerate(CLASSES):
            for i in range(s.n_slices):
                v = _brute_dice(p_all[i, ..., c], s.masks[i, ..., c])
                v = dice_both_empty if v is None else v
                if v is not None:
                    d_rows.append((name, v))
            p, t = p_all[..., c], s.masks[..., c]
            if not p.any() and not t.any():
                h = hd_both_empty
            elif not p.any() or not t.any():
                h = 1.0
            else:
                h = _brute_hausdorff(p, t)
            if h is not None:
                h_rows.append((name, h))
    dm = sum(v for _, v in d_rows) / len(d_rows)
    hm = sum(v for _, v in h_rows) / len(h_rows)
    return dm, hm, d_rows, h_rows


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    ("dice_both_empty", "hd_both_empty"), [(None, None), (0.0, 0.0), (1.0, None)]
)
def test_score_stacks_matches_reference(seed, dice_both_empty, hd_both_empty):
    truth, pred = _random_dataset(seed)
    conv = MetricConventions(
        dice_both_empty=math.nan if dice_both_empty is None else dice_both_empty,
        hausdorff_both_empty=math.nan if hd_both_empty is None else hd_both_empty,
    )
    result = score_stacks(truth, pred, conventions=conv)
    dm, hm, d_rows, h_rows = _reference_result(truth, pred, dice_both_empty, hd_both_empty)
    assert result.dice == pytest.approx(dm)
    assert result.hausdorff == pytest.approx(hm)
    assert result.score == pytest.approx(0.4 * dm + 0.6 * (1 - hm))
    for name in CLASSES:
        dc = [v for c, v in d_rows if c == name]
        hc = [v for c, v in h_rows if c == name]
        stats = result.per_class[name]
        if dc:
            assert stats["dice"] == pytest.approx(sum(dc) / len(dc))
        else:
            assert math.isnan(stats["dice"])
        if hc:
            assert stats["hausdorff"] == pytest.approx(sum(hc) / len(hc))
            if dc:
                expected = 0.4 * stats["dice"] + 0.6 * (1 - stats["hausdorff"])
                assert stats["score"] == pytest.approx(expected)
        else:
            assert math.isnan(stats["hausdorff"])
        assert stats["n_slices"] == sum(s.n_slices for s in truth)
    for v in (result.dice, result.hausdorff, result.score):
        assert type(v) is float


def test_means_are_over_rows_not_over_classes():
    # Class 0: 1 slice with Dice 1; class 1: 3 slices with Dice 0 (disjoint pixels).
    t = np.zeros((3, 4, 4, 3), bool)
    p = np.zeros_like(t)
    t[0, 0, 0, 0] = p[0, 0, 0, 0] = True
    for i in range(3):
        t[i, 1, 1, 1] = True
        p[i, 3, 3, 1] = True
    stack = _stack(t)
    result = score_stacks([stack], {stack.key: p})
    assert result.per_class["large_bowel"]["dice"] == 1.0
    assert result.per_class["small_bowel"]["dice"] == 0.0
    assert math.isnan(result.per_class["stomach"]["dice"])
    assert result.dice == pytest.approx(1 / 4)  # over rows; mean of class means would be 1/2
    assert result.hausdorff == pytest.approx(
        (0.0 + _brute_hausdorff(p[..., 1], t[..., 1])) / 2
    )
    assert result.per_class["stomach"]["n_empty"] == 3
    assert result.per_class["large_bowel"]["n_empty"] == 2
    assert result.n_empty == 3 + 2 + 0
    assert result.n_empty_volumes == 1


def test_score_formula_and_conventions_change_the_result():
    t = np.zeros((2, 4, 4, 3), bool)
    t[0, 1, 1, 0] = True
    p = t.copy()
    stack = _stack(t)
    default = score_stacks([stack], {stack.key: p})
    assert (default.dice, default.hausdorff, default.score) == (1.0, 0.0, 1.0)
    zero = score_stacks(
        [stack], {stack.key: p}, conventions=MetricConventions(0.0, math.nan)
    )
    # 6 (slice, class) rows, one non-empty with Dice 1.
    assert zero.dice == pytest.approx(1 / 6)
    assert zero.score == pytest.approx(0.4 / 6 + 0.6)
    hd_one = score_stacks(
        [stack], {stack.key: p}, conventions=MetricConventions(math.nan, 1.0)
    )
    assert hd_one.hausdorff == pytest.approx(2 / 3)


def test_long_format_frames():
    truth, pred = _random_dataset(0, n_stacks=2)
    result = score_stacks(truth, pred)
    assert list(result.per_slice.columns) == ["case", "key", "id", "class", "metric", "value"]
    assert list(result.per_case.columns) == ["case", "key", "class", "metric", "value"]
    n_rows = sum(s.n_slices for s in truth) * len(CLASSES)
    assert (result.per_slice["metric"] == "dice").sum() == n_rows
    assert set(result.per_case["metric"]) == {"dice", "hausdorff"}
    assert len(result.per_case) == 2 * len(truth) * len(CLASSES)
    ps, pc = score_volumes(
        truth[0].masks, pred[truth[0].key], classes=CLASSES, ids=truth[0].ids,
        key=truth[0].key, case=truth[0].case,
    )
    assert ps.equals(result.per_slice.iloc[: len(ps)].reset_index(drop=True))
    assert set(pc["case"]) == {truth[0].case}


def test_to_dict_is_json_and_nan_free():
    truth, pred = _random_dataset(1)
    d = score_stacks(truth, pred).to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert {"dice", "hausdorff", "score", "per_class"} <= set(back)
    assert set(back["per_class"]) == set(CLASSES)
    assert {"dice", "hausdorff", "score", "n_slices", "n_empty"} <= set(
        back["per_class"]["large_bowel"]
    )
    assert back["per_class"]["stomach"]["dice"] is None or isinstance(
        back["per_class"]["stomach"]["dice"], float
    )


def test_missing_prediction_names_the_key():
    truth, pred = _random_dataset(2)
    del pred[truth[1].key]
    with pytest.raises(ValueError, match=truth[1].key):
        score_stacks(truth, pred)


def test_prediction_of_wrong_shape_names_the_key():
    truth, pred = _random_dataset(2)
    pred[truth[0].key] = pred[truth[0].key][:, :-1]
    with pytest.raises(ValueError, match=truth[0].key):
        score_stacks(truth, pred)


def test_describe_mentions_the_conventions():
    assert "left out" in MetricConventions().describe()
    text = MetricConventions(dice_both_empty=0.0, hausdorff_both_empty=1.0).describe()
    assert "counted as 0" in text and "counted as 1" in text
