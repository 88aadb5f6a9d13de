"""The study's split: kaggle.yaml tests every case once, data.exclude drops scans before the
split, and a split that leaves cases untested says so (issue 21)."""

from __future__ import annotations

import logging
import json
from pathlib import Path

from gitract.compare import run_comparison
from gitract.compare._run import make_folds
from gitract.config import ExperimentConfig, config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[1]
# 85 case names like the Kaggle training set's (case2 .. case156, gaps included).
KAGGLE_CASES = [f"case{n}" for n in range(2, 157, 2)][:78] + [f"case{n}" for n in
                                                            range(3, 17, 2)]


def test_kaggle_config_tests_every_case_exactly_once():
    assert len(set(KAGGLE_CASES)) == 85
    config = load_config(ROOT / "experiments/configs/kaggle.yaml")
    assert config.data.exclude == ("case7_day0", "case81_day30")
    splits, folds = make_folds(config, KAGGLE_CASES)
    tested = [c for _, _, test in folds for c in test]
    assert sorted(tested) == sorted(KAGGLE_CASES)  # each once
    for train, val, test in folds:
        assert not (set(train) | set(val)) & set(test) and not set(train) & set(val)
        assert len(val) == 8 and len(train) + len(val) + len(test) == 85


def _config(tmp_path, n_cases=4, **split) -> ExperimentConfig:
    return config_from_dict({
        "name": "t", "seed": 0,
        "data": {"kind": "phantom", "path": str(tmp_path / "ph"), "exclude": ["case2", "case9_day1"],
                 "phantom": {"n_cases": n_cases, "n_days": 2, "n_slices": 4, "sizes": [[64, 64]]}},
        "split": split,
        "tracks": [{"name": "rf", "kind": "blocks",
                    "params": {"classifier": "rf", "block_size": 9, "step": 8,
                               "n_per_class": 5, "background_cap": 10,
                               "model_params": {"n_estimators": 3}}}]})


def test_untested_cases_and_exclusions_reach_log_splits_and_report(tmp_path, caplog):
    config = _config(tmp_path, n_folds=1, n_test=1, test_fraction=None, val_fraction=0.34)
    with caplog.at_level(logging.INFO, logger="gitract"):
        out = run_comparison(config, tmp_path / "run", progress=False)

    splits = json.loads((out / "splits.json").read_text())
    days = splits["excluded"]["case2"]
    assert len(days) == 2 and all(d.startswith("case2_day") for d in days)
    assert splits["excluded"]["case9_day1"] == [] and "case2" not in splits["cases"]
    assert len(splits["untested"]) == 2 and set(splits["untested"]) | set(
        splits["folds"][0]["test"]) == {"case1", "case3", "case4"}
    log = (out / "log.txt").read_text()
    assert "2 of 3 cases are never tested" in log
    assert f"data.exclude case2: 2 scan(s) left out ({', '.join(days)})" in log
    assert "data.exclude case9_day1: no such case or case-day in the dataset" in log
    report = (out / "report.md").read_text()
    assert "**2 never tested**" in report
    assert f"case2 (2 scans: {', '.join(days)}); case9_day1 (not in the dataset)" in report


def test_cross_validation_says_every_case_is_tested(tmp_path):
    out = run_comparison(_config(tmp_path, 5, n_folds=2, cross_validate=True), tmp_path / "run",
                         progress=False)
    assert "every one of the 4 cases is tested" in (out / "log.txt").read_text()
    assert "- Tested: every one of the 4 cases, once." in (out / "report.md").read_text()
