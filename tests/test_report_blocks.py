"""The report section on block tracks' feature importance and capacity search."""

from __future__ import annotations

import numpy as np

import shutil

from gitract.compare._block_models import (
    CAPACITY_FILE,
    IMPORTANCE_FILE,
    block_model_tables,
    importances,
)
from gitract.compare._files import write_csv
from gitract.compare._report_blocks import block_model_lines
from gitract.data.record import SliceStack
from gitract.tracks import BlockSettings, save_block_track, train_block_track


def _stack(case: str, seed: int) -> SliceStack:
    gen = np.random.default_rng(seed)
    image = 0.1 + 0.02 * gen.standard_normal((2, 32, 32))
    masks = np.zeros((2, 32, 32, 3), bool)
    masks[:, 6:14, 6:14, 0] = True
    image[:, 6:14, 6:14] += 0.6
    return SliceStack(image=image.astype(np.float32), masks=masks,
                      classes=("large_bowel", "small_bowel", "stomach"), spacing=(1.5, 1.5),
                      ids=(f"{case}_day1_slice_0001", f"{case}_day1_slice_0002"), case=case,
                      day="day1")


def test_importance_table_ranks_the_saved_models_features(tmp_path):
    settings = BlockSettings(classifier="lightgbm", block_size=9, step=4, n_per_class=20,
                             background_cap=40, feature_params={"sigmas": (1.0,)},
                             model_params={"n_estimators": 5, "n_jobs": 1})
    track = train_block_track([_stack("case1", 1), _stack("case2", 2)], settings)
    track.search = [{"trial": 0, "params": {"n_estimators": 5}, "val_dice": 0.4, "seconds": 1.0},
                    {"trial": 1, "params": {"n_estimators": 9}, "val_dice": 0.5, "seconds": 1.0}]
    save_block_track(track, tmp_path / "steps" / "fold0" / "lgb" / "model")
    shares = importances(track.model)
    assert shares.shape == (len(settings.feature_names(track.classes)),)
    assert np.isclose(shares.sum(), 1.0)
    lines = block_model_lines(tmp_path, {"tracks": {"lgb": {"kind": "blocks"},
                                                    "unet": {"kind": "segmentation"}}})
    text = "\n".join(lines)
    names = settings.feature_names(track.classes)
    top = names[int(np.argmax(shares))]
    assert f"| 1 | `{top}` |" in text and "### lgb: top 20 of" in text
    assert '| lgb | 0 | 2 | 0.400 | 0.500 | `{"n_estimators": 9}` |' in text
    assert block_model_lines(tmp_path / "elsewhere", {"tracks": {"lgb": {"kind": "blocks"}}}) == []

    # The run keeps the tables beside its other files: a copy without steps/ (a committed
    # report) gives the same section.
    importance, capacity = block_model_tables(tmp_path, ["lgb", "absent"])
    assert set(importance["track"]) == {"lgb"} and list(capacity["trial"]) == [0, 1]
    copy = tmp_path / "committed"
    copy.mkdir()
    write_csv(copy / IMPORTANCE_FILE, importance)
    write_csv(copy / CAPACITY_FILE, capacity)
    shutil.rmtree(tmp_path / "steps")
    assert block_model_lines(copy, {"tracks": {"lgb": {"kind": "blocks"}}}) == lines
