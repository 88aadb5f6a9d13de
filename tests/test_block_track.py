"""Block track on tiny synthetic stacks: train, predict maps, tune, score, save.

The run-level path (split, tuning on validation cases only, scoring, report) is the
engine's, tested in ``tests/test_compare.py`` and ``tests/commands/``."""

from __future__ import annotations

import numpy as np
import pytest

from gitract.data.record import SliceStack
from gitract.metrics import score_stacks
from gitract.postprocessing import tune_thresholds
from gitract.tracks import (
    BlockSettings,
    TuningSettings,
    load_block_track,
    predict_stacks,
    save_block_track,
    train_block_track,
)

CLASSES3 = ("large_bowel", "small_bowel", "stomach")
SIZE = 40


def _case(case: str, seed: int, n_slices: int = 2) -> SliceStack:
    """A body with a bright square (large bowel) and a mid-grey disc (stomach)."""
    gen = np.random.default_rng(seed)
    image = gen.normal(0.1, 0.03, (n_slices, SIZE, SIZE))
    masks = np.zeros((n_slices, SIZE, SIZE, 3), bool)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for s in range(n_slices):
        image[s, 4:36, 4:36] += 0.3  # body
        r0, c0 = 8 + gen.integers(0, 4), 8 + gen.integers(0, 4)
        masks[s, r0 : r0 + 10, c0 : c0 + 10, 0] = True
        disc = (yy - 26 - gen.integers(0, 3)) ** 2 + (xx - 26) ** 2 <= 36
        masks[s, ..., 2] = disc
        image[s][masks[s, ..., 0]] += 0.5
        image[s][disc] += 0.25
    return SliceStack(
        image=(image * 1000).astype(np.float32), masks=masks, classes=CLASSES3,
        spacing=(1.5, 1.5), ids=tuple(f"{case}_day1_slice_{i:04d}" for i in range(n_slices)),
        case=case, day="day1",
    )


@pytest.fixture(scope="module")
def stacks() -> list[SliceStack]:
    return [_case(f"case{i}", i) for i in range(5)]


SPLIT = (["case0", "case1", "case2"], ["case3"], ["case4"])


def _config(**kw) -> BlockSettings:
    base = dict(
        block_size=9, step=2, n_per_class=30, background_cap=60,
        feature_params={"sigmas": (1.0, 2.0)},
        model_params={"n_estimators": 10, "n_jobs": 1},
    )
    base.update(kw)
    return BlockSettings(**base)


@pytest.mark.parametrize("classifier", ["rf", "lightgbm"])
def test_block_track_end_to_end(stacks, classifier):
    params = {"n_estimators": 10, "n_jobs": 1}
    if classifier == "lightgbm":
        params.update(min_child_samples=5)
    config = _config(classifier=classifier, model_params=params)
    train, val, test = stacks[:3], stacks[3:4], stacks[4:]
    track = train_block_track(train, config)
    sweep = TuningSettings(min_sizes=(0, 8), hausdorff_max_side=None)  # the track's sweep
    tuning = tune_thresholds(track.predict_proba(val), val, grid=sweep.threshold_grid,
                             min_sizes=sweep.min_sizes,
                             hausdorff_max_side=sweep.hausdorff_max_side)
    assert tuning.keys == ("case3_day1",)
    proba = track.predict_proba(test)
    maps = proba["case4_day1"]
    assert maps.shape == (2, SIZE, SIZE, 3) and maps.dtype == np.float32
    result = score_stacks(test, {k: tuning.apply(p) for k, p in proba.items()})
    assert result.per_class["large_bowel"]["dice"] > 0.7
    assert result.per_class["stomach"]["dice"] > 0.7
    assert np.isnan(result.per_class["small_bowel"]["dice"])  # absent, predicted absent
    assert track.fit_seconds > 0 and proba.ms_per_slice > 0
    assert track.n_train_blocks > 0 and track.model_bytes > 0


def test_cache_gives_identical_maps_and_reuses_features(stacks):
    config = _config()
    cache: dict = {}
    track = train_block_track(stacks[:3], config, cache=cache)
    a = track.predict_proba(stacks[3:], cache=cache)
    n_entries = len(cache)
    b = track.predict_proba(stacks[3:], cache=cache)
    c = train_block_track(stacks[:3], config).predict_proba(stacks[3:])
    assert len(cache) == n_entries  # nothing recomputed
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_allclose(a[key], c[key], atol=1e-6)


def test_train_is_seeded(stacks):
    a = train_block_track(stacks[:2], _config())
    b = train_block_track(stacks[:2], _config())
    pa = a.predict_proba(stacks[4:])
    pb = b.predict_proba(stacks[4:])
    np.testing.assert_array_equal(pa["case4_day1"], pb["case4_day1"])
    assert a.n_train_blocks == b.n_train_blocks
    assert set(a.class_counts) == {0, 1, 3}
    model, featurizer = a
    assert model is a.model and featurizer is a.featurizer


def test_save_load_round_trip(stacks, tmp_path):
    track = train_block_track(stacks[:2], _config())
    track.tuning = tune_thresholds(track.predict_proba(stacks[2:3]), stacks[2:3])
    out = save_block_track(track, tmp_path / "model")
    assert sorted(p.name for p in out.iterdir()) == ["track.joblib", "track.json"]
    loaded = load_block_track(out)
    assert loaded.config == track.config
    assert loaded.tuning.thresholds == track.tuning.thresholds
    a = track.predict_masks(stacks[4:])
    b = loaded.predict_masks(stacks[4:])
    np.testing.assert_array_equal(a["case4_day1"], b["case4_day1"])
    with pytest.raises(FileNotFoundError, match="no trained block track"):
        load_block_track(tmp_path / "nowhere")


def test_a_track_saved_by_an_earlier_version_still_loads(stacks, tmp_path):
    """Earlier versions kept the sweep's settings (dead there) in the saved config."""
    import joblib

    track = train_block_track(stacks[:2], _config())
    out = save_block_track(track, tmp_path / "model")
    payload = joblib.load(out / "track.joblib")
    payload["config"].update(threshold_grid=[0.5], min_sizes=[0, 64, 256],
                             hausdorff_max_side=128)
    joblib.dump(payload, out / "track.joblib")
    loaded = load_block_track(out)
    assert loaded.config == track.config
    np.testing.assert_array_equal(loaded.predict_masks(stacks[4:])["case4_day1"],
                                  track.predict_masks(stacks[4:])["case4_day1"])


def test_predict_stacks_dense_model(stacks):
    class Dense:
        classes_ = np.array([0, 1, 2, 3])

        def predict_proba_dense(self, image):
            out = np.zeros((*image.shape, 4), np.float32)
            out[..., 1] = image
            return out

    maps = predict_stacks(Dense(), None, stacks[:1], step=1)
    assert maps["case0_day1"].shape == (2, SIZE, SIZE, 3)
    assert maps.n_slices == 2 and maps.ms_per_slice > 0
    assert maps["case0_day1"][..., 0].max() == pytest.approx(1.0)


def test_config_validation_and_round_trip():
    config = _config(classifier="lightgbm")
    assert BlockSettings.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="classifier"):
        BlockSettings(classifier="svm")
    with pytest.raises(ValueError, match="block_size"):
        BlockSettings(block_size=32)
    with pytest.raises(ValueError, match="interpolation"):
        BlockSettings(interpolation="bilinear")
    with pytest.raises(ValueError, match="unknown"):
        BlockSettings.from_dict({"blocksize": 33})


def test_train_errors(stacks):
    unlabelled = stacks[0].subset([0])
    unlabelled.masks = None
    with pytest.raises(ValueError, match="no masks"):
        train_block_track([unlabelled], _config())
    empty = stacks[0].subset([0])
    empty.masks = np.zeros_like(empty.masks)
    with pytest.raises(ValueError, match="single label"):
        train_block_track([empty], _config())
    with pytest.raises(ValueError, match="at least one"):
        train_block_track([], _config())


def test_max_train_blocks_caps_the_sample_and_keeps_it_seeded(stacks):
    from gitract.tracks import training_rows

    full = train_block_track(stacks[:3], _config())
    n_slices = sum(s.n_slices for s in stacks[:3])
    capped = train_block_track(stacks[:3], _config(max_train_blocks=60))
    per_slice = -(-60 // n_slices)
    assert capped.n_train_blocks <= per_slice * n_slices < full.n_train_blocks
    again = train_block_track(stacks[:3], _config(max_train_blocks=60))
    assert capped.class_counts == again.class_counts
    # The cap is per slice, from the track's whole training set: a scan read alone
    # (as the streaming engine reads it) keeps the same rows.
    X, y, _ = training_rows(stacks[0], _config(max_train_blocks=60), n_train_slices=n_slices)
    assert len(y) <= per_slice * stacks[0].n_slices
    with pytest.raises(ValueError, match="max_train_blocks"):
        _config(max_train_blocks=0)


def test_parallel_config_is_validated_before_any_data():
    from gitract.config import config_from_dict

    with pytest.raises(ValueError, match="n_jobs"):
        config_from_dict({"parallel": {"n_jobs": 0}})
    with pytest.raises(ValueError, match="backend"):
        config_from_dict({"parallel": {"backend": "spark"}})
    with pytest.raises(ValueError, match=r"parallel\.workers: unknown key"):
        config_from_dict({"parallel": {"workers": 2}})
    assert config_from_dict({"parallel": {"n_jobs": 3}}).parallel.n_jobs == 3


def _dense_config(**kw) -> BlockSettings:
    params = {"channels": [4, 8], "hidden": 8, "max_steps": 60, "crop_size": 16,
              "crops_per_step": 2, "lr": 1e-2, "device": "cpu", "num_threads": 1}
    return _config(classifier="cnn", features="raw", feature_params={}, training="dense",
                   block_size=15, model_params=params, **kw)


def test_dense_cnn_track_trains_on_whole_slices_and_predicts(stacks, tmp_path):
    pytest.importorskip("torch")
    from gitract.tracks import training_rows

    config = _dense_config()
    images, labels, _ = training_rows(stacks[0], config)
    assert images.shape == (2, SIZE, SIZE) and images.dtype == np.float32
    assert labels.shape == (2, SIZE, SIZE) and set(np.unique(labels)) == {0, 1, 3}
    track = train_block_track(stacks[:3], config)
    assert track.model.n_steps_ == 60 and set(track.class_counts) == {0, 1, 3}
    assert track.n_train_blocks == 3 * 2 * SIZE * SIZE  # every centre of every slice
    proba = track.predict_proba(stacks[4:])["case4_day1"]
    result = score_stacks(stacks[4:], {"case4_day1": proba > 0.5})
    assert result.per_class["large_bowel"]["dice"] > 0.5
    loaded = load_block_track(save_block_track(track, tmp_path / "model"))
    np.testing.assert_array_equal(loaded.predict_proba(stacks[4:])["case4_day1"], proba)
    # the engine's record of the training: a step budget and a curve by step
    from gitract.tracks import make_track

    adapter = make_track("cnn", {}, random_state=0)
    adapter.track_ = loaded
    record = adapter.training
    assert record["budget"] == {"max_steps": 60} and record["steps"] == 60
    assert record["stopped"] == "max_steps" and len(record["curve"]) == 10
    assert [row["step"] for row in record["curve"]][-1] == 60
    with pytest.raises(ValueError, match="training"):
        _config(training="dense")  # the random forest has no dense training


@pytest.mark.parametrize("training", ["dense", "blocks"])
def test_cnn_track_with_context_features(stacks, tmp_path, training):
    pytest.importorskip("torch")
    from gitract.features import context_names

    params = {"channels": [4, 8], "hidden": 8, "max_steps": 30, "max_epochs": 2,
              "crop_size": 16, "crops_per_step": 2, "lr": 1e-2, "device": "cpu",
              "num_threads": 1, "context_features": True}
    config = _config(classifier="cnn", features="raw", feature_params={}, training=training,
                     block_size=15, model_params=params)
    track = train_block_track(stacks[:3], config)
    assert track.featurizer.context is True
    assert track.model.n_features_in_ == 15 * 15 + len(context_names())
    assert track.model.net_.n_context == len(context_names())
    proba = track.predict_proba(stacks[4:])["case4_day1"]
    assert proba.shape == (2, SIZE, SIZE, 3) and np.isfinite(proba).all()
    loaded = load_block_track(save_block_track(track, tmp_path / "model"))
    np.testing.assert_array_equal(loaded.predict_proba(stacks[4:])["case4_day1"], proba)
    with pytest.raises(ValueError, match="feature_params.context"):
        _config(classifier="cnn", features="raw", feature_params={"context": False},
                training=training, block_size=15, model_params=params)


def test_rf_on_raw_pixels_and_context(stacks):
    config = _config(features="raw", feature_params={"context": True})
    track = train_block_track(stacks[:3], config)
    assert track.model.n_features_in_ == 81 + 15
    proba = track.predict_proba(stacks[4:])["case4_day1"]
    assert proba.shape == (2, SIZE, SIZE, 3)


def test_max_train_slices_keeps_a_seeded_share_of_each_stack(stacks):
    from gitract.tracks import training_rows

    big = [_case(f"big{i}", 10 + i, n_slices=6) for i in range(2)]
    config = _dense_config(max_train_slices=4)
    kept = [training_rows(s, config, n_train_slices=12)[0] for s in big]
    assert [len(k) for k in kept] == [2, 2]  # ceil(4 * 6 / 12) per stack
    again = training_rows(big[0], config, n_train_slices=12)[0]
    np.testing.assert_array_equal(kept[0], again)
    X, y, _ = training_rows(big[0], _config(max_train_slices=4), n_train_slices=12)
    assert 0 < len(y) < len(training_rows(big[0], _config())[1])  # blocks of 2 slices of 6
    with pytest.raises(ValueError, match="max_train_slices"):
        _config(max_train_slices=0)
