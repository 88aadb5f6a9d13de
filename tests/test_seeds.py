"""Several training seeds on one split (issue 21): each extra seed is a run of its own
through the same engine, the main table gives the mean and spread over seeds, and the
interval holds the seed variance (a two-level bootstrap)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gitract.compare import run_comparison
from gitract.config import ConfigError, config_from_dict
from gitract.metrics import CaseTotals, bootstrap_interval, seed_bootstrap_interval


def _totals(dice_per_case):
    d = np.asarray(dice_per_case, dtype=float)
    n = len(d)
    return CaseTotals(tuple(f"case{i}" for i in range(n)), d, np.ones(n), np.zeros(n),
                      np.ones(n))


def test_the_two_level_interval_holds_the_seed_variance():
    cases = np.linspace(0.5, 0.7, 8)
    # Three seeds that differ only by a shift: the case-level interval of one seed is
    # narrower than the interval over seeds, whose mean is the seeds' mean.
    seeds = [_totals(cases + shift) for shift in (-0.1, 0.0, 0.1)]
    two_level = seed_bootstrap_interval(seeds, n_resamples=4000, random_state=0)["dice"]
    one = bootstrap_interval(seeds[1], n_resamples=4000, random_state=0)["dice"]
    assert two_level.estimate == pytest.approx(0.6)
    assert (two_level.high - two_level.low) > 1.5 * (one.high - one.low)
    # Identical seeds: no seed variance, the case-level interval back.
    same = seed_bootstrap_interval([seeds[1]] * 3, n_resamples=4000, random_state=0)["dice"]
    assert same.low == pytest.approx(one.low, abs=0.01)
    assert same.high == pytest.approx(one.high, abs=0.01)
    with pytest.raises(ValueError, match="same test cases"):
        seed_bootstrap_interval([seeds[0], _totals(cases[:4])])


def _raw(tmp_path, seeds):
    return {"name": "seeds", "seed": 0, "seeds": seeds,
            "data": {"kind": "phantom", "path": str(tmp_path / "ph"),
                     "phantom": {"n_cases": 4, "n_days": 1, "n_slices": 4,
                                 "sizes": [[64, 64]]}},
            "split": {"n_folds": 1, "n_test": 1, "test_fraction": None, "n_val": 1},
            "tracks": [{"name": "rf", "kind": "blocks",
                        "params": {"classifier": "rf", "block_size": 9, "step": 8,
                                   "n_per_class": 5, "background_cap": 10,
                                   "model_params": {"n_estimators": 3}}}]}


def test_each_seed_trains_on_the_same_split_and_the_table_gives_mean_and_spread(tmp_path):
    out = run_comparison(config_from_dict(_raw(tmp_path, [0, 1, 2])), tmp_path / "run",
                         progress=False)
    splits = json.loads((out / "splits.json").read_text())
    for s in (1, 2):
        sub = out / "seeds" / f"s{s}"
        assert json.loads((sub / "splits.json").read_text())["folds"] == splits["folds"]
        key = json.loads((sub / "steps/fold0/rf/model/done.json").read_text())["key"]
        main = json.loads((out / "steps/fold0/rf/model/done.json").read_text())["key"]
        assert key != main  # another training seed, another model
    summary = json.loads((out / "summary.json").read_text())
    entry = summary["seeds"]["tracks"]["rf"]["score"]
    assert summary["seeds"]["seeds"] == [0, 1, 2]
    # Seed 0 is the main run: its pooled score is the one of the main statistics.
    assert entry["per_seed"][0] == pytest.approx(
        summary["statistics"]["tracks"]["rf"]["score"]["estimate"])
    assert entry["mean"] == pytest.approx(np.mean(entry["per_seed"]))
    assert entry["sd"] == pytest.approx(np.std(entry["per_seed"], ddof=1))
    assert entry["low"] <= entry["mean"] <= entry["high"]
    table = pd.read_csv(out / "seeds.csv")
    assert table["seed"].tolist() == [0, 1, 2]
    assert table["score"].tolist() == pytest.approx(entry["per_seed"])
    report = (out / "report.md").read_text()
    assert "## Seeds" in report and "two-level bootstrap" in report
    main_table = report.split("## Main table")[1].split("\n## ")[0]
    row = next(line for line in main_table.splitlines() if line.startswith("| rf | "))
    assert f"{entry['mean']:.3f} ± {entry['sd']:.3f} [" in row
    # Resumed: every seed's steps are found finished, the figures unchanged.
    run_comparison(config_from_dict(_raw(tmp_path, [0, 1, 2])), tmp_path / "run",
                   progress=False)
    again = json.loads((out / "summary.json").read_text())["seeds"]["tracks"]["rf"]["score"]
    assert again == entry


def test_seeds_must_hold_the_main_seed_and_no_repeat(tmp_path):
    with pytest.raises(ConfigError, match="seeds: must include seed"):
        config_from_dict(_raw(tmp_path, [1, 2]))
    with pytest.raises(ConfigError, match="repeated"):
        config_from_dict(_raw(tmp_path, [0, 0]))
