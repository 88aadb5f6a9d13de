"""Auto-context cross-fitting and the capacity search (gitract.tracks._staged_fit)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from gitract.tracks import BlockSettings
from gitract.tracks import _staged_fit
from gitract.tracks._autocontext import context_columns, crossfit_groups
from gitract.tracks._capacity import grid_dice
from gitract.data.record import SliceStack
from gitract.utils.schema import KeyProblem

CLASSES3 = ("large_bowel", "small_bowel", "stomach")


def _case(case: str, seed: int, n_slices: int = 2) -> SliceStack:
    """40x40 slices: a body, a bright bar (large bowel) and a grey square (stomach)
    that move a little from slice to slice."""
    gen = np.random.default_rng(seed + 100)
    image = 0.1 + 0.03 * gen.standard_normal((n_slices, 40, 40))
    masks = np.zeros((n_slices, 40, 40, 3), bool)
    image[:, 5:35, 5:35] += 0.3
    for s in range(n_slices):
        r, c = gen.integers(8, 12, size=2)
        masks[s, r : r + 6, c : c + 14, 0] = True
        masks[s, r + 12 : r + 20, c + 10 : c + 18, 2] = True
        image[s][masks[s, ..., 0]] += 0.5
        image[s][masks[s, ..., 2]] += 0.25
    return SliceStack(image=(image * 1000).astype(np.float32), masks=masks, classes=CLASSES3,
                      spacing=(1.5, 1.5), case=case, day="day1",
                      ids=tuple(f"{case}_day1_slice_{i:04d}" for i in range(n_slices)))


@dataclass
class _Ref:
    case: str
    n_slices: int


class _Source:
    def __init__(self, stack, log):
        self.stack, self.log = stack, log

    def read(self):
        self.log.append(self.stack.key)
        return self.stack


class _Index:
    """The part of DatasetIndex a block track's fit uses; logs every scan read."""

    classes = CLASSES3

    def __init__(self, stacks):
        self.stacks = {s.key: s for s in stacks}
        self.read: list[str] = []

    def ref(self, key):
        return _Ref(self.stacks[key].case, self.stacks[key].n_slices)

    def source(self, key):
        return _Source(self.stacks[key], self.read)


@pytest.fixture(scope="module")
def index_stacks():
    return [_case(f"case{i}", i, n_slices=2) for i in range(6)]


def _settings(**kw) -> BlockSettings:
    base = dict(classifier="lightgbm", block_size=9, step=2, n_per_class=20, background_cap=40,
                features="bank", feature_params={"scales_mm": (1.5, 3.0)},
                model_params={"n_estimators": 8, "n_jobs": 1, "verbose": -1},
                context_scales_mm=(1.5, 6.0))
    base.update(kw)
    return BlockSettings(**base)


def test_crossfit_never_lets_a_stage_model_predict_a_case_it_was_fitted_on(
        index_stacks, monkeypatch):
    index = _Index(index_stacks)
    train = [s.key for s in index_stacks[:5]]
    seen_by: dict[int, set] = {}  # id(model) -> cases of the rows it was fitted on
    case_of_rows: dict[int, str] = {}
    checked = []
    real_rows, real_fit = _staged_fit.training_rows, _staged_fit.fit_block_track

    def rows(stack, config, *, chain=(), **kw):
        for model in chain:
            assert stack.case not in seen_by[id(model)], (stack.case, seen_by[id(model)])
            checked.append(stack.case)
        part = real_rows(stack, config, chain=chain, **kw)
        case_of_rows[id(part[0])] = stack.case
        return part

    def fit(parts, *args, **kw):
        cases = {case_of_rows[id(p[0])] for p in parts}
        track = real_fit(parts, *args, **kw)
        seen_by[id(track.model)] = cases
        return track

    monkeypatch.setattr(_staged_fit, "training_rows", rows)
    monkeypatch.setattr(_staged_fit, "fit_block_track", fit)
    track, _, _ = _staged_fit.fit_from_index(index, train, [], _settings(stages=3,
                                                                          crossfit_folds=3))
    assert len(track.stage_models) == 2  # stage 1 and 2 fitted on all training cases
    assert seen_by[id(track.stage_models[0])] == {s.case for s in index_stacks[:5]}
    # every training case was re-featurised at stages 2 and 3 through out-of-case chains
    assert sorted(set(checked)) == sorted(s.case for s in index_stacks[:5])
    assert index_stacks[5].key not in index.read
    maps = track.predict_proba([index_stacks[5]])[index_stacks[5].key]
    assert maps.shape == (2, 40, 40, 3) and np.isfinite(maps).all()
    assert track.model.n_features_in_ == len(track.config.feature_names(CLASSES3))


def test_the_search_reads_training_and_validation_cases_only(index_stacks):
    index = _Index(index_stacks)
    train, val, test = ([s.key for s in index_stacks[:4]], [index_stacks[4].key],
                        [index_stacks[5].key])
    track, used, trials = _staged_fit.fit_from_index(index, train, val,
                                                     _settings(search_trials=3))
    assert set(index.read) == set(train) | set(val) and not set(index.read) & set(test)
    assert len(trials) == 3 and trials[0]["params"] == dict(_settings().model_params)
    best = max(trials, key=lambda t: t["val_dice"])
    assert used.model_params == best["params"] == track.config.model_params
    assert len({str(t["params"]) for t in trials}) == 3  # seeded draws differ


def test_search_is_seeded(index_stacks):
    runs = [_staged_fit.fit_from_index(_Index(index_stacks), [s.key for s in index_stacks[:4]],
                                       [index_stacks[4].key], _settings(search_trials=2))[2]
            for _ in range(2)]
    assert [t["params"] for t in runs[0]] == [t["params"] for t in runs[1]]


def test_crossfit_groups_split_cases_not_scans():
    groups = crossfit_groups(["a", "a", "b", "c", "d", "d"], 3, 0)
    assert groups[0] == groups[1] and groups[4] == groups[5] and set(groups) == {0, 1, 2}
    with pytest.raises(ValueError, match="at least 2 training cases"):
        crossfit_groups(["a", "a"], 3, 0)


def test_context_columns_follow_the_spacing_and_the_grid():
    proba = np.zeros((30, 30, 2), np.float32)
    proba[10, 20, 1] = 1.0
    cols = context_columns(proba, np.array([10]), np.array([20]), spacing=(1.0, 1.0),
                           scales_mm=(1.0, 2.0, 4.0), block_size=5)
    assert cols.shape == (1, 2 * 3 + 2 * 8)
    assert cols[0, 3] > cols[0, 4] > cols[0, 5] > 0  # class 1 at 1, 2, 4 mm
    assert np.all(cols[0, :3] == 0)
    coarse = context_columns(proba, np.array([10]), np.array([20]), spacing=(2.0, 2.0),
                             scales_mm=(1.0, 2.0, 4.0), block_size=5)
    assert coarse[0, 3] > cols[0, 3]  # 1 mm is half a pixel at 2 mm per pixel


def test_grid_dice_takes_the_best_threshold():
    labels = np.array([1, 1, 0, 0, 2])
    proba = np.array([[0.35, 0], [0.32, 0], [0.05, 0], [0.2, 0], [0.0, 0.95]])
    assert grid_dice(proba, labels, 2) == pytest.approx(1.0)


@pytest.mark.parametrize("params, key", [
    ({"stages": 4}, "stages"),
    ({"crossfit_folds": 1}, "crossfit_folds"),
    ({"search_trials": -1}, "search_trials"),
    ({"context_scales_mm": [0, 2]}, "context_scales_mm"),
    ({"features": "bank", "feature_params": {"sigmas": [1, 2]}}, "feature_params.sigmas"),
    ({"features": "bank", "feature_params": {"scales_mm": [-1]}}, "feature_params"),
    ({"features": "bunk"}, "features"),
])
def test_settings_name_the_bad_key(params, key):
    with pytest.raises(KeyProblem, match=rf"tracks\[0\]\.params\.{key}"):
        BlockSettings.from_dict({"classifier": "lightgbm", **params}, "tracks[0].params")


def test_cnn_refuses_stages_and_search():
    with pytest.raises(ValueError, match="stages"):
        BlockSettings(classifier="cnn", features="raw", stages=2)
    with pytest.raises(ValueError, match="search_trials"):
        BlockSettings(classifier="cnn", features="raw", search_trials=3)
