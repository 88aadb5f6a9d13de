"""The locked hold-out (issue 21): set aside before any fold, never reaching a choice, and
scored only by the final step, which refuses to score again after the settings changed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from skimage import io as skio

from gitract.compare import run_comparison
from gitract.config import config_from_dict
from gitract.data.phantom import PhantomConfig, write_phantom
from gitract.data.record import DataError

PHANTOM = PhantomConfig(n_cases=5, n_days=1, n_slices=4, sizes=((64, 64),))


def _raw(path, **split):
    return {"name": "h", "seed": 0,
            "data": {"kind": "kaggle", "path": str(path)},
            "split": {"n_folds": 1, "n_test": 1, "test_fraction": None, "n_val": 1,
                      "holdout": ["case5"], **split},
            "tracks": [{"name": "rf", "kind": "blocks",
                        "params": {"classifier": "rf", "block_size": 9, "step": 8,
                                   "n_per_class": 5, "background_cap": 10,
                                   "model_params": {"n_estimators": 3}}}]}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom(tmp_path_factory.mktemp("ph") / "data", PHANTOM)


def _choices(run):
    """Everything the run chose or scored: models' thresholds and steps, per-slice test
    metrics and the reference track."""
    metrics = json.loads((run / "steps/fold0/rf/eval/metrics.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    return {"tuning": metrics["tuning"], "validation": metrics["validation"],
            "per_slice": pd.read_csv(run / "metrics_per_slice.csv").fillna(-1).to_dict("list"),
            "reference": summary["statistics"]["comparisons"]["score"]["reference"],
            "folds": json.loads((run / "splits.json").read_text())["folds"]}


def test_changing_the_holdout_images_and_masks_changes_no_choice(phantom, tmp_path):
    other = shutil.copytree(phantom, tmp_path / "other")
    gen = np.random.default_rng(0)
    for png in (other / "train" / "case5").rglob("*.png"):
        skio.imsave(png, gen.integers(0, 4000, (64, 64)).astype(np.uint16),
                    check_contrast=False)
    csv = pd.read_csv(other / "train.csv", keep_default_na=False)
    csv.loc[csv["id"].str.startswith("case5_"), "segmentation"] = "1 40"
    csv.to_csv(other / "train.csv", index=False)
    a = run_comparison(config_from_dict(_raw(phantom)), tmp_path / "a", progress=False)
    b = run_comparison(config_from_dict(_raw(other)), tmp_path / "b", progress=False)
    splits = json.loads((a / "splits.json").read_text())
    assert splits["holdout"] == ["case5"] and "case5" not in json.dumps(splits["folds"])
    assert _choices(a) == _choices(b)
    assert "Locked hold-out: 1 case(s) set aside" in (a / "report.md").read_text()
    assert "not scored yet" in (a / "report.md").read_text()


def test_the_final_step_scores_once_and_refuses_after_a_change(phantom, tmp_path):
    config = config_from_dict(_raw(phantom))
    run = run_comparison(config, tmp_path / "run", progress=False, final=True)
    record = json.loads((run / "final/final.json").read_text())
    assert record["holdout"] == ["case5"] and not record["forced_after_change"]
    final_slices = pd.read_csv(run / "final/metrics_per_slice.csv")
    assert set(final_slices["case"]) == {"case5"}
    report = (run / "report.md").read_text()
    assert "## Locked hold-out (final step)" in report and "| rf | " in report
    # The same settings: nothing is scored again.
    run_comparison(config, tmp_path / "run", progress=False, final=True)
    assert "hold-out already scored with these settings" in (run / "log.txt").read_text()
    # Settings recorded as other than the run's now: refused, then forced and said.
    record["settings_key"] = "0" * 16
    record["config"]["seed"] = 7
    (run / "final/final.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"scored on .* with other settings \(config keys "
                                        r"seed\).*--final --force"):
        run_comparison(config, tmp_path / "run", progress=False, final=True)
    run_comparison(config, tmp_path / "run", progress=False, final=True, force=True)
    assert json.loads((run / "final/final.json").read_text())["forced_after_change"]
    assert "Scored again after the settings changed (forced)" in (run / "report.md").read_text()


def test_holdout_problems_are_named_before_the_run_folder(phantom, tmp_path):
    raw = _raw(phantom)
    raw["split"].pop("holdout")
    with pytest.raises(DataError, match="split.holdout is not set"):
        run_comparison(config_from_dict(raw), tmp_path / "r1", progress=False, final=True)
    with pytest.raises(DataError, match="hold-out case 'case9' is not in the dataset"):
        run_comparison(config_from_dict(_raw(phantom, holdout=["case9"])), tmp_path / "r2",
                       progress=False)
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_a_holdout_fraction_is_drawn_with_the_seed():
    from gitract.data.splits import choose_holdout

    cases = [f"case{i}" for i in range(1, 21)]
    a = choose_holdout(cases, 0.2, random_state=0)
    assert len(a) == 4 and a == choose_holdout(list(reversed(cases)), 0.2, random_state=0)
    assert a != choose_holdout(cases, 0.2, random_state=1)
