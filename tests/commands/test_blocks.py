"""``gitract blocks evaluate|train|predict`` on a tiny phantom."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gitract.cli import main
from gitract.data.phantom import PhantomConfig, write_phantom

TINY = ["--block-size", "9", "--n-per-class", "20", "--background-cap", "40",
        "--param", "n_estimators=5", "--param", "n_jobs=1"]


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom") / "ph"
    config = PhantomConfig(n_cases=4, n_days=1, n_slices=4, sizes=((64, 64),))
    return write_phantom(out, config)


def test_blocks_evaluate_prints_table_and_writes(phantom_dir, tmp_path, capsys):
    rc = main(["blocks", "evaluate", "--data", "kaggle", "--path", str(phantom_dir),
               *TINY, "--out", str(tmp_path / "ev")])
    assert rc == 0
    text = capsys.readouterr().out
    for name in ("large_bowel", "small_bowel", "stomach", "overall"):
        assert name in text
    table = pd.read_csv(tmp_path / "ev" / "per_fold.csv")
    assert set(table["class"]) == {"large_bowel", "small_bowel", "stomach", "overall"}
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert results[0]["config"]["block_size"] == 9


def test_blocks_train_then_predict_submission(phantom_dir, tmp_path, capsys):
    model_dir = tmp_path / "model"
    assert main(["blocks", "train", "--data", "kaggle", "--path", str(phantom_dir),
                 *TINY, "--out", str(model_dir)]) == 0
    assert (model_dir / "track.joblib").is_file()
    sub = tmp_path / "submission.csv"
    assert main(["blocks", "predict", "--model", str(model_dir), "--data-dir", str(phantom_dir),
                 "--images-subdir", "train", "--out", str(sub)]) == 0
    frame = pd.read_csv(sub, keep_default_na=False)
    assert list(frame.columns) == ["id", "class", "predicted"]
    assert len(frame) == 4 * 4 * 3


def test_cnn_evaluate_shares_the_block_evaluation(phantom_dir, tmp_path, capsys):
    rc = main(["cnn", "evaluate", "--data", "kaggle", "--path", str(phantom_dir),
               "--block-size", "9", "--n-per-class", "10", "--background-cap", "20",
               "--epochs", "1", "--channels", "4,8", "--threads", "1", "--device", "cpu",
               "--out", str(tmp_path / "cnn")])
    assert rc == 0
    assert "overall" in capsys.readouterr().out
    results = json.loads((tmp_path / "cnn" / "results.json").read_text())
    assert results[0]["config"]["classifier"] == "cnn"
    assert results[0]["config"]["features"] == "raw"
