"""Track kind ``nnunet``: the tiny config through ``gitract compare`` and ``gitract
predict`` (nnU-Net's plan, preprocess, train and predict on a CPU), its settings checks,
and a missing extra that ends in one line."""

from __future__ import annotations

import json
import re
import sys

import pandas as pd
import pytest

from gitract.cli import main
from gitract.paths import REPO_ROOT
from gitract.tracks import parse_track

CONFIG = REPO_ROOT / "experiments" / "configs" / "tiny_nnunet.yaml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    pytest.importorskip("nnunetv2")
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("GITRACT_CACHE", str(cache))
    out = tmp_path_factory.mktemp("run") / "tiny_nnunet"
    try:
        assert main(["compare", str(CONFIG), "--out", str(out), "--no-progress"]) == 0
        yield out, cache
    finally:
        mp.undo()


def test_tiny_nnunet_runs_through_compare(tiny_run):
    out, cache = tiny_run
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["tracks"]) == ["nnunet-2d"]
    assert 0 <= summary["tracks"]["nnunet-2d"]["dice"] <= 1
    curve = pd.read_csv(out / "training.csv")
    assert curve["epoch"].tolist() == [1, 2] and curve["step"].tolist() == [2, 4]
    # nnU-Net's pseudo Dice (hard, on patches) is not the other tracks' val_dice: the
    # convergence verdict reads its validation loss instead.
    assert "val_pseudo_dice" in curve and "val_dice" not in curve
    conv = summary["statistics"]["convergence"]["nnunet-2d"]["folds"][0]
    assert conv["curve"] == "-val_loss"
    model = out / "steps" / "fold0" / "nnunet-2d" / "model"
    meta = json.loads((model / "nnunet.json").read_text())
    planned = meta["plans"]["configurations"]["2d"]  # the overrides reached nnU-Net's plan
    assert meta["configuration"] == "2d" and planned["patch_size"] == [64, 64]
    assert planned["batch_size"] == 2 and planned["spacing"] == [2.25, 2.25]
    assert meta["dataset_json"]["regions_class_order"] == [1, 2, 4]
    # nnU-Net's working folders were in the cache folder and are gone after training
    assert not list((cache / "nnunet").iterdir())
    assert "nnunet-2d" in (out / "report.md").read_text()


def test_tiny_nnunet_predicts_again_from_the_saved_model(tiny_run, tmp_path, capsys):
    out, cache = tiny_run
    data = next(cache.glob("phantom-*"))
    sub = tmp_path / "sub.csv"
    assert main(["predict", str(out), "--track", "nnunet-2d", "--data-dir", str(data),
                 "--images-subdir", "train", "--out", str(sub), "--no-progress"]) == 0
    rows = pd.read_csv(sub)
    assert len(rows) == 3 * 8 * 3 and set(rows["class"]) == {"large_bowel", "small_bowel",
                                                             "stomach"}


@pytest.mark.parametrize(("params", "message"), [
    ({"configuration": "3d"}, "params.configuration: must be one of 2d, 3d_fullres"),
    ({"epochs": 0}, "params.epochs: must be >= 1"),
    ({"patch_size": [4, 64]}, "params.patch_size: must be >= 8"),
    ({"spacing": [3, 0, 1]}, "params.spacing: must be >= 0.001"),
    ({"spacing": [1, 2, 2]}, "params.spacing: in 2d the slice spacing (first) must be"),
    ({"device": "gpu"}, "params.device: must be auto, cpu, cuda"),
])
def test_bad_settings_are_named_by_their_key(params, message):
    pytest.importorskip("nnunetv2")
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_track("nnunet", params)


def test_a_missing_extra_ends_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "nnunetv2", None)  # import nnunetv2 now fails
    out = tmp_path / "run"
    assert main(["compare", str(CONFIG), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "nnU-Net is not installed" in err and "pip install -e '.[nnunet]'" in err
    assert "torch==2.13.0" in err and not out.exists()
