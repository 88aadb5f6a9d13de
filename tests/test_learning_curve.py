"""The data-regime curve: nested subsets fixed with the split, one run per size through the
same engine, the table, the crossing sentences and the report section (issue 21)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gitract.compare import run_comparison
from gitract.compare._learning_curve import crossing_sentences, curve_plan
from gitract.config import config_from_dict
from gitract.data.record import DataError
from gitract.data.splits import nested_subsets


def test_subsets_are_nested_seeded_and_per_fold():
    cases = [f"case{i}" for i in range(1, 11)]
    subsets = nested_subsets(cases, [1, 2, 4, 8], random_state=3)
    for small, large in zip([1, 2, 4], [2, 4, 8]):
        assert set(subsets[small]) < set(subsets[large])
    assert subsets == nested_subsets(list(reversed(cases)), [1, 2, 4, 8], random_state=3)
    assert subsets != nested_subsets(cases, [1, 2, 4, 8], random_state=4)
    folds = [(cases[:6], ["v"], ["t0"]), (cases[4:], ["v"], ["t1"])]
    plan = curve_plan(folds, [2, 4], seed=0)
    assert all(set(sub) <= set(folds[k][0]) for k, sub in enumerate(plan["4"]))
    with pytest.raises(ValueError, match="learning_curve.train_cases: fold 0: 7 training cases "
                                         "asked, only 6 available"):
        curve_plan(folds, [2, 7], seed=0)


def _row(n, track, kind, family, score, val):
    return {"train_cases": n, "track": track, "kind": kind, "family": family,
            "score": score, "validation_score": val}


def test_crossing_sentences_name_where_the_curves_cross_or_that_they_do_not():
    rows = []
    for n, blocks, deep in [(1, 0.6, 0.5), (2, 0.62, 0.58), (4, 0.63, 0.7), (8, 0.64, 0.8)]:
        rows += [_row(n, "lgbm", "blocks", "classical", blocks, 0.6),
                 _row(n, "rf", "blocks", "classical", blocks - 0.1, 0.5),
                 _row(n, "unet", "unet", "U-Net", deep, 0.7),
                 _row(n, "cnn", "cnn", "CNN", blocks - 0.2, 0.1)]
    lines = crossing_sentences(pd.DataFrame(rows))
    assert lines[0] == ("- classical (lgbm) and U-Net (unet): the curves cross between 2 and "
                        "4 cases (U-Net above from then) (within 1 to 8 training cases).")
    assert lines[1] == ("- classical (lgbm) and CNN (cnn): the curves do not cross from 1 to 8 "
                        "training cases; classical scores above CNN at every size.")
    assert len(lines) == 3


def test_a_curve_runs_each_size_through_the_engine_and_reports_it(tmp_path):
    raw = {"name": "lc", "seed": 0,
           "data": {"kind": "phantom", "path": str(tmp_path / "ph"),
                    "phantom": {"n_cases": 5, "n_days": 1, "n_slices": 4,
                                "sizes": [[64, 64]]}},
           "split": {"n_folds": 1, "n_test": 1, "test_fraction": None, "n_val": 1},
           "learning_curve": {"train_cases": [1, 2]},
           "tracks": [{"name": "rf", "kind": "blocks",
                       "params": {"classifier": "rf", "block_size": 9, "step": 8,
                                  "n_per_class": 5, "background_cap": 10,
                                  "model_params": {"n_estimators": 3}}}]}
    out = run_comparison(config_from_dict(raw), tmp_path / "run", progress=False)
    splits = json.loads((out / "splits.json").read_text())
    train = splits["folds"][0]["train"]
    plan = splits["learning_curve"]
    assert len(train) == 3 and set(plan["1"][0]) < set(plan["2"][0]) < set(train)
    sub = json.loads((out / "curve" / "n2" / "splits.json").read_text())
    assert sub["folds"][0]["train"] == plan["2"][0]
    assert sub["folds"][0]["val"] == splits["folds"][0]["val"]
    assert sub["folds"][0]["test"] == splits["folds"][0]["test"]
    table = pd.read_csv(out / "learning_curve.csv")
    assert table["train_cases"].tolist() == [1, 2, 3] and (table["track"] == "rf").all()
    assert table["train_slices"].tolist() == [4, 8, 12]
    report = (out / "report.md").read_text()
    assert "## Data-regime curve" in report and "figures/data_regime.png" in report
    assert (out / "figures" / "data_regime.png").is_file()
    # Resumed: every step of every size is found finished.
    run_comparison(config_from_dict(raw), tmp_path / "run", progress=False)
    log = (out / "log.txt").read_text()
    assert log.count("fold 0 rf: cached, skipped") == 3


def test_a_size_above_the_training_cases_stops_before_the_run_folder(tmp_path):
    raw = {"name": "lc", "data": {"kind": "phantom", "path": str(tmp_path / "ph"),
                                  "phantom": {"n_cases": 4, "n_days": 1, "n_slices": 4,
                                              "sizes": [[64, 64]]}},
           "split": {"n_folds": 1, "n_test": 1, "test_fraction": None, "n_val": 1},
           "learning_curve": {"train_cases": [1, 5]},
           "tracks": [{"name": "rf", "kind": "blocks", "params": {"classifier": "rf"}}]}
    with pytest.raises(DataError, match="fold 0: 5 training cases asked, only 2 available"):
        run_comparison(config_from_dict(raw), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_config_without_a_curve_round_trips_through_its_json():
    """A run's config.json holds ``learning_curve: null``; reading it back (aggregate_run,
    gitract report) must accept that."""
    raw = {"name": "x", "tracks": [{"name": "rf", "kind": "blocks",
                                    "params": {"classifier": "rf"}}]}
    config = config_from_dict(raw)
    stored = json.loads(json.dumps(config.to_dict()))
    assert stored["learning_curve"] is None
    assert config_from_dict(stored) == config
    with_curve = config_from_dict({**raw, "learning_curve": {"train_cases": [1, 2]}})
    assert config_from_dict(json.loads(json.dumps(with_curve.to_dict()))) == with_curve
