"""The volume steps inside a run: tuned on validation (z-range on training) without reading
a test case, recorded in the step's outputs, and applied by ``gitract predict``."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from gitract.cli import main
from gitract.compare import _scan_eval as E
from gitract.compare import run_comparison
from gitract.compare._predict import load_trained_track
from gitract.compare._run import data_path, load_index
from gitract.compare._steps import mark_done
from gitract.config import config_from_dict
from gitract.data.kaggle import stacks_to_rle_frame

RF = {"classifier": "rf", "block_size": 33, "step": 8, "n_per_class": 20, "background_cap": 40,
      "model_params": {"n_estimators": 10, "n_jobs": 1}}
RAW = {"name": "tiny-post", "seed": 0,
       "data": {"kind": "phantom",
                "phantom": {"n_cases": 4, "n_days": 1, "n_slices": 8, "sizes": [[96, 96]]}},
       "split": {"n_folds": 1, "n_test": 1, "test_fraction": None, "n_val": 1},
       "report": {"n_example_slices": 1},
       "tracks": [{"name": "rf", "kind": "blocks", "params": RF},
                  {"name": "rf-raw", "kind": "blocks",
                   "params": {**RF, "postprocess": {"gate": False, "z_range": False,
                                                    "components": False}}}]}


@pytest.fixture(scope="module")
def spied_run(tmp_path_factory):
    """A run whose tuning functions record which scans they read."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GITRACT_CACHE", str(tmp_path_factory.mktemp("cache")))
    seen: dict[str, list[str]] = {"threshold": [], "volume": [], "z_range": []}

    def spy(name, function):
        def wrapped(source, *args, **kwargs):
            seen[name].append(source.ref.case)
            return function(source, *args, **kwargs)
        return wrapped

    mp.setattr(E, "validation_statistics", spy("threshold", E.validation_statistics))
    mp.setattr(E, "postprocess_validation", spy("volume", E.postprocess_validation))
    mp.setattr(E, "training_positions", spy("z_range", E.training_positions))
    config = config_from_dict(RAW)
    out = tmp_path_factory.mktemp("run") / "tiny-post"
    run_comparison(config, out, progress=False)
    yield config, out, seen
    mp.undo()


def test_tuning_reads_validation_and_training_scans_never_test(spied_run):
    _, out, seen = spied_run
    fold = json.loads((out / "splits.json").read_text())["folds"][0]
    # Both tracks tune thresholds on the validation case; only "rf" has volume steps on.
    assert set(seen["threshold"]) == set(fold["val"])
    assert set(seen["volume"]) == set(fold["val"])
    assert set(seen["z_range"]) == set(fold["train"])
    assert not set(fold["test"]) & {c for cases in seen.values() for c in cases}


def test_choices_are_recorded_and_twins_share_one_model(spied_run):
    _, out, _ = spied_run
    summary = json.loads((out / "summary.json").read_text())
    chosen = summary["tracks"]["rf"]["folds"][0]["postprocess"]
    assert set(chosen) == {"large_bowel", "small_bowel", "stomach"}
    assert set(chosen["stomach"]) >= {"gate_cut", "gate_area", "z_margin",
                                      "component_fraction", "z_range"}
    raw = summary["tracks"]["rf-raw"]["folds"][0]["postprocess"]
    assert all(v["gate_cut"] == 0 and v["z_margin"] is None and v["component_fraction"] == 0
               for v in raw.values())
    # Tracks that differ only in their tuning keys: one model, trained once.
    log = (out / "log.txt").read_text()
    assert log.count("training on") == 1 and "rf-raw: same model as rf, copied" in log
    assert "## Postprocessing" in (out / "report.md").read_text()


def _predict(out, track, tmp_path, name):
    config = config_from_dict(RAW)
    sub = tmp_path / name
    assert main(["predict", str(out), "--track", track, "--data-dir", data_path(config.data),
                 "--images-subdir", "train", "--out", str(sub)]) == 0
    return pd.read_csv(sub).fillna("")


def test_predict_writes_what_was_scored(spied_run, tmp_path):
    _, out, _ = spied_run
    scored = pd.read_csv(out / "steps" / "fold0" / "rf" / "eval" / "predictions.csv").fillna("")
    sub = _predict(out, "rf", tmp_path, "sub.csv")
    merged = scored.merge(sub, on=["id", "class"], suffixes=("_scored", "_sub"))
    assert len(merged) == len(scored) > 0
    assert (merged["predicted_scored"] == merged["predicted_sub"]).all()


def test_predict_applies_the_recorded_steps(spied_run, tmp_path):
    """With a forceful choice written into the run folder, the submission follows it."""
    config, out, _ = spied_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    path = copy / "steps" / "fold0" / "rf" / "eval" / "metrics.json"
    metrics = json.loads(path.read_text())
    for step in metrics["postprocess"].values():
        step.update(gate_cut=0.99, component_fraction=1.0)
    path.write_text(json.dumps(metrics))
    mark_done(path.parent, json.loads((path.parent / "done.json").read_text())["key"])
    sub = _predict(copy, "rf", tmp_path, "forced.csv")
    adapter, stage = load_trained_track(copy, "rf")
    assert stage.steps.steps[0].gate_cut == 0.99
    index = load_index(config)
    frames, forced, plain = [], 0, 0
    for key in index.keys():
        stack = index.read(key)
        proba = adapter.predict_proba_stack(stack)
        masks = stage.apply(proba, stack.slice_numbers)
        frames.append(stacks_to_rle_frame([stack], {key: masks}, column="predicted"))
        forced += int(masks.sum())
        plain += int(stage.thresholds.apply(proba).sum())
    expected = pd.concat(frames, ignore_index=True).fillna("")
    merged = expected.merge(sub, on=["id", "class"], suffixes=("_want", "_sub"))
    assert len(merged) == len(expected)
    assert (merged["predicted_want"] == merged["predicted_sub"]).all()
    assert forced < plain  # the forceful choice did remove something


def test_run_level_sweep_keeps_the_best_row_per_step_set_and_the_choice(spied_run):
    import pandas as pd

    _, out, _ = spied_run
    full = pd.read_csv(out / "steps/fold0/rf/eval/postprocess.csv")
    run = pd.read_csv(out / "postprocess.csv")
    run = run[run["model"] == "rf"]
    assert len(run) < len(full)  # the step folder keeps every candidate, the run table few
    for cls, part in full.groupby("class"):
        mine = run[run["class"] == cls]
        assert mine["score"].max() == part["score"].max()
        assert mine["chosen"].sum() == part["chosen"].sum() == 1
