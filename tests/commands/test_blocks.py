"""``gitract blocks evaluate|train|predict`` and ``gitract cnn evaluate`` on a tiny
phantom: thin callers of the comparison engine that write a run folder."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gitract.cli import main
from gitract.data.phantom import PhantomConfig, write_phantom

CLASSES = {"large_bowel", "small_bowel", "stomach"}
TINY = ["--block-size", "9", "--step", "8", "--n-per-class", "20", "--background-cap", "40",
        "--param", "n_estimators=5", "--param", "n_jobs=1"]


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom") / "ph"
    config = PhantomConfig(n_cases=4, n_days=1, n_slices=4, sizes=((64, 64),))
    return write_phantom(out, config)


@pytest.fixture(scope="module")
def trained(phantom_dir, tmp_path_factory):
    """``blocks train`` without ``--out``: the run goes to ``runs/<data>-<track>-train``."""
    import os

    cwd = tmp_path_factory.mktemp("cwd")
    old = os.getcwd()
    os.chdir(cwd)
    try:
        rc = main(["blocks", "train", "--data", "kaggle", "--path", str(phantom_dir), *TINY])
    finally:
        os.chdir(old)
    assert rc == 0
    return cwd / "runs" / "kaggle-rf-9-train"


def _summary(run):
    return json.loads((run / "summary.json").read_text())


def test_blocks_evaluate_cross_validates_into_a_run_folder(phantom_dir, tmp_path, capsys):
    run = tmp_path / "ev"
    assert main(["blocks", "evaluate", "--data", "kaggle", "--path", str(phantom_dir), *TINY,
                 "--folds", "2", "--every", "2", "--out", str(run)]) == 0
    text = capsys.readouterr().out
    summary = _summary(run)
    track = summary["tracks"]["rf-9"]
    assert track["kind"] == "blocks" and track["params"]["block_size"] == 9
    assert summary["dataset"]["slice_step"] == 2
    # Every case is tested once; thresholds come from each fold's validation scans only.
    folds = summary["split"]["folds"]
    assert sorted(c for f in folds for c in f["test"]) == [f"case{i}" for i in range(1, 5)]
    for f, tf in zip(folds, track["folds"], strict=True):
        assert sorted(k.split("_")[0] for k in tf["tuning"]["keys"]) == f["val"]
        assert not set(f["test"]) & set(f["val"])
    per_slice = pd.read_csv(run / "metrics_per_slice.csv")
    assert per_slice["id"].nunique() == 4 * 2  # 4 cases, every 2nd of 4 slices
    for name in (*CLASSES, "overall"):
        assert name in text
    assert f"{track['score']:.3f}" in text
    assert str(run / "report.md") in text and (run / "report.md").is_file()


def test_blocks_train_writes_a_run_that_gitract_predict_uses(trained, phantom_dir, tmp_path):
    summary = _summary(trained)
    fold = summary["split"]["folds"][0]
    assert fold["test"] == [] and fold["val"] and fold["train"]
    assert (trained / "steps" / "fold0" / "rf-9" / "model" / "track.joblib").is_file()
    assert set(summary["tracks"]["rf-9"]["folds"][0]["validation"]) == CLASSES
    assert "No test cases: nothing was scored" in (trained / "report.md").read_text()
    sub = tmp_path / "submission.csv"
    assert main(["predict", str(trained), "--data-dir", str(phantom_dir),
                 "--images-subdir", "train", "--out", str(sub)]) == 0
    frame = pd.read_csv(sub, keep_default_na=False)
    assert list(frame.columns) == ["id", "class", "predicted"]
    assert len(frame) == 4 * 4 * 3 and frame["id"].nunique() == 16
    assert set(frame["class"]) == CLASSES
    # The old command is an alias of gitract predict.
    alias = tmp_path / "alias.csv"
    assert main(["blocks", "predict", "--model", str(trained), "--data-dir", str(phantom_dir),
                 "--images-subdir", "train", "--out", str(alias)]) == 0
    assert alias.read_text() == sub.read_text()


def test_report_of_a_training_run_rebuilds(trained):
    (trained / "report.md").unlink()
    assert main(["report", str(trained)]) == 0
    text = (trained / "report.md").read_text()
    assert "# gitract training run" in text and "## Thresholds tuned on the validation" in text


def test_cnn_evaluate_runs_a_cnn_track(phantom_dir, tmp_path, capsys):
    run = tmp_path / "cnn"
    assert main(["cnn", "evaluate", "--data", "kaggle", "--path", str(phantom_dir),
                 "--block-size", "9", "--step", "8", "--n-per-class", "10",
                 "--background-cap", "20", "--epochs", "1", "--channels", "4,8",
                 "--threads", "1", "--device", "cpu", "--every", "2",
                 "--out", str(run)]) == 0
    assert "overall" in capsys.readouterr().out
    track = _summary(run)["tracks"]["cnn-9"]
    assert track["kind"] == "cnn"
    assert track["params"]["model_params"]["channels"] == [4, 8]
    assert track["params"]["model_params"]["max_epochs"] == 1
    assert track["folds"][0]["test_cases"]  # a held-out split by default


def test_cnn_evaluate_dense_trains_by_steps_through_the_engine(phantom_dir, tmp_path):
    run = tmp_path / "cnn-dense"
    assert main(["cnn", "evaluate", "--data", "kaggle", "--path", str(phantom_dir),
                 "--block-size", "9", "--step", "8", "--dense", "--steps", "3",
                 "--param", "crop_size=16", "--param", "crops_per_step=2",
                 "--param", "validation_fraction=0.5", "--channels", "4,8", "--threads", "1", "--device", "cpu", "--every", "2",
                 "--no-progress", "--out", str(run)]) == 0
    track = _summary(run)["tracks"]["cnn-9"]
    assert track["params"]["training"] == "dense"
    record = track["folds"][0]["training"]
    assert record["steps"] == 3 and record["budget"] == {"max_steps": 3}
    curve = pd.read_csv(run / "training.csv")
    assert curve["step"].tolist() == [1, 2, 3] and curve["val_loss"].notna().all()


@pytest.mark.parametrize("training", [["--dense", "--steps", "3"], ["--epochs", "1"]])
def test_cnn_evaluate_with_context_features(phantom_dir, tmp_path, training):
    run = tmp_path / "cnn-ctx"
    assert main(["cnn", "evaluate", "--data", "kaggle", "--path", str(phantom_dir),
                 "--block-size", "9", "--step", "8", "--n-per-class", "10",
                 "--background-cap", "20", *training, "--param", "crop_size=16",
                 "--param", "crops_per_step=2", "--param", "context_features=true",
                 "--channels", "4,8", "--threads", "1", "--device", "cpu", "--every", "2",
                 "--no-progress", "--out", str(run)]) == 0
    track = _summary(run)["tracks"]["cnn-9"]
    assert track["params"]["model_params"]["context_features"] is True
    assert track["folds"][0]["test_cases"]


@pytest.mark.parametrize("argv, where", [
    (["--block-size", "8"], "block_size"),
    (["--every", "0"], "slice_step"),
    (["--n-val", "4"], "n_val"),
    (["--param", "oops"], "--param"),
])
def test_bad_options_end_in_one_line(phantom_dir, tmp_path, capsys, argv, where):
    run = tmp_path / "bad"
    assert main(["blocks", "evaluate", "--data", "kaggle", "--path", str(phantom_dir),
                 *TINY, *argv, "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and where in err[0]
    assert not (run / "summary.json").exists()


def test_predict_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["predict", str(tmp_path), "--data-dir", str(tmp_path),
                 "--out", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.json" in err[0]
