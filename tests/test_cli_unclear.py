"""The last unclear endings (issue 25): each known problem is one ``error:`` line naming
the right file or key, each thing skipped or not checked a warning naming it, and nothing a
user owns is written over by a config that cannot mean a run."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gitract.cli import build_parser, main
from gitract.data.index import index_dataset
from gitract.data.phantom import PhantomConfig, write_phantom

TINY = ["--block-size", "9", "--step", "8", "--n-per-class", "20", "--background-cap", "40",
        "--param", "n_estimators=5", "--param", "n_jobs=1"]


def _one_error(err: str, line: str) -> None:
    """Exactly one line on stderr, ``line`` itself, and no traceback."""
    lines = err.strip().splitlines()
    assert lines == [line], lines
    assert "Traceback" not in err


def _warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("warning:")]


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("phantom") / "ph"
    return Path(write_phantom(out, PhantomConfig(n_cases=3, n_days=1, n_slices=4,
                                                 sizes=((72, 64),))))


@pytest.fixture
def copy(phantom_dir, tmp_path) -> Path:
    return Path(shutil.copytree(phantom_dir, tmp_path / "data"))


def _scans(root: Path, case: str = "case1") -> Path:
    (day,) = (root / "train" / case).iterdir()
    return day / "scans"


@pytest.fixture(scope="module")
def trained(phantom_dir, tmp_path_factory) -> tuple[Path, str]:
    """A one-fold training run on the phantom, and what ``blocks train`` printed."""
    run = tmp_path_factory.mktemp("run") / "rf"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["blocks", "train", "--data", "kaggle", "--path", str(phantom_dir), *TINY,
                     "--out", str(run), "--no-progress"]) == 0
    return run, buffer.getvalue()


# ---------------------------------------------------------------------- A. config
@pytest.mark.parametrize(("text", "problem"), [
    ("", "the config is empty (expected a mapping of settings: name, data, split, tracks)"),
    ("- rf\n", "expected a mapping of settings at the top level, got a list (['rf'])"),
    ("tracks: [{name: rf, kind: blocks}]\n", "name: missing: a config names its run (its "
                                             "default folder is reports/<name>)"),
    ("name: x\ntracks: []\n", "tracks: is an empty list: a config needs at least one track "
                              "(- {name: ..., kind: ..., params: ...})"),
    ("name: x\ndata: null\ntracks: [{name: rf, kind: blocks}]\n",
     "data: is null (an empty section?): give its settings, or leave the key out for the "
     "defaults (the embedded phantom)"),
    ("name: x\nseed: 1\ntracks: [{name: rf, kind: blocks}]\nseed: 2\n",
     "seed: duplicate key on lines 2 and 4"),
])
def test_a_config_that_cannot_mean_a_run_writes_nothing(tmp_path, monkeypatch, capsys, text,
                                                         problem):
    """An empty config used to run as ``quick`` and overwrite ``reports/quick``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(text)
    assert main(["compare", "c.yaml"]) == 2
    _one_error(capsys.readouterr().err, f"error: c.yaml: {problem}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_a_relative_data_path_is_named_with_the_folder_it_was_read_from(tmp_path, monkeypatch,
                                                                         capsys):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "c.yaml").write_text(
        "name: x\ndata: {kind: kaggle, path: data/uwmgi}\ntracks: [{name: rf, kind: blocks}]\n")
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "configs/c.yaml", "--out", "run"]) == 2
    _one_error(capsys.readouterr().err,
               f"error: data/uwmgi: dataset folder does not exist (data.path, a relative path "
               f"read from the working folder {tmp_path}, not from the config file's folder)")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------- B. validate
def test_validate_without_train_csv_says_no_mask_was_checked(copy, capsys):
    (copy / "train.csv").unlink()
    assert main(["validate", str(copy)]) == 0
    out = capsys.readouterr().out
    assert f"data: {copy}  csv: none found (masks not checked)" in out.splitlines()
    assert _warnings(out) == [f"warning: {copy / 'train.csv'}: not found: no mask was checked "
                              "(--csv names another RLE CSV)"]


def test_empty_folders_and_bad_symlinks_are_named_in_validate_and_indexing(copy, capsys,
                                                                           caplog):
    (copy / "train" / "case9").mkdir()
    (copy / "train" / "case2" / "case2_day999" / "scans").mkdir(parents=True)
    scans = _scans(copy)
    loop = scans / "slice_0099_72_64_1.50_1.50.png"
    os.symlink(loop.name, loop)  # points at itself
    broken = scans / "slice_0098_72_64_1.50_1.50.png"
    os.symlink("gone.png", broken)
    expected = [f"warning: {broken}: broken symlink (to gone.png), skipped",
                f"warning: {loop}: symlink loop, skipped",
                f"warning: {copy / 'train' / 'case2' / 'case2_day999'}: empty case-day folder "
                "(no slice image in it), skipped",
                f"warning: {copy / 'train' / 'case9'}: empty case folder (no slice image in "
                "it), skipped"]
    assert main(["validate", str(copy)]) == 0
    out = capsys.readouterr().out
    assert _warnings(out) == expected and "problems: 0" in out
    with caplog.at_level(logging.WARNING, logger="gitract"):
        index = index_dataset("kaggle", copy)
    assert len(index.keys()) == 3
    assert [f"warning: {r.getMessage()}" for r in caplog.records
            if r.name.startswith("gitract")] == expected


def _pairs(root: Path) -> Path:
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    gen = np.random.default_rng(0)
    for n in (1, 2):
        Image.fromarray(gen.integers(0, 255, (16, 16), dtype=np.uint8)).save(
            root / "images" / f"case1_day1_slice_{n:04d}.png")
        mask = np.zeros((16, 16), np.uint8)
        mask[4:9, 4:9] = 1
        Image.fromarray(mask).save(root / "masks" / f"case1_day1_slice_{n:04d}.png")
    return root


def test_validate_names_a_pair_folder_and_checks_it_with_kind(tmp_path, capsys):
    root = _pairs(tmp_path / "pairs")
    assert main(["validate", str(root)]) == 2
    out = capsys.readouterr().out
    assert (f"{root / 'train'}: images folder does not exist: not the Kaggle layout "
            f"({root}/train/caseN/caseN_dayM/scans/*.png); it holds images/ and masks/ "
            "(image/mask pairs?): try --kind pairs (or uwmgi_derived) (kinds: kaggle, "
            "phantom, uwmgi_derived, isbi2012, totalseg, colin27, pairs, nifti)"
            in out.splitlines())
    assert main(["validate", str(root), "--kind", "pairs"]) == 2
    assert ("--kind pairs: read_image_mask_pairs() missing 1 required keyword-only argument: "
            "'classes' (loader options are given as --option KEY=VALUE)"
            in capsys.readouterr().out.splitlines())
    assert main(["validate", str(root), "--kind", "pairs", "--option", "classes=[stomach]",
                 "--option", "label_values={stomach: 1}"]) == 0
    out = capsys.readouterr().out
    assert f"data: {root}  kind: pairs (images and masks read by its loader)" in out
    assert "slices: 2" in out and "problems: 0" in out


# ---------------------------------------------------------------------- C. wrong paths
def test_a_file_where_the_images_folder_belongs_is_named(copy, capsys):
    shutil.rmtree(copy / "train")
    (copy / "train").write_text("not a folder")
    assert main(["validate", str(copy)]) == 2
    out = capsys.readouterr().out
    assert "problems: 1" in out and "has no image file" not in out
    assert f"{copy / 'train'}: is a file, not a folder (the images folder)" in out.splitlines()
    assert main(["blocks", "evaluate", "--data", "kaggle", "--path", str(copy), *TINY,
                 "--out", str(copy.parent / "run")]) == 2
    _one_error(capsys.readouterr().err,
               f"error: {copy / 'train'}: is a file, not a folder (the images folder)")


def test_a_file_where_scans_belong_is_named(copy, capsys):
    scans = _scans(copy, "case2")
    shutil.rmtree(scans)
    scans.write_text("")
    assert main(["validate", str(copy)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert (f"{scans}: is a file, not a folder (the slice images of {scans.parent.name})"
            in lines)
    assert main(["blocks", "evaluate", "--data", "kaggle", "--path", str(copy), *TINY,
                 "--out", str(copy.parent / "run")]) == 2
    _one_error(capsys.readouterr().err, f"error: {scans}: is a file, not a folder (the slice "
                                        f"images of {scans.parent.name})")


def test_a_data_dir_that_is_a_file_is_named(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["validate", str(tmp_path / "f" / "data")]) == 2
    assert f"{tmp_path / 'f'}: is a file, not a folder" in capsys.readouterr().out.splitlines()


def test_out_inside_a_file_names_the_file(trained, phantom_dir, tmp_path, capsys):
    run, _ = trained
    (tmp_path / "taken").write_text("mine")
    for out in (tmp_path / "taken" / "sub.csv", tmp_path / "taken" / "a" / "sub.csv"):
        assert main(["predict", str(run), "--data-dir", str(phantom_dir), "--images-subdir",
                     "train", "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        (line,) = err.strip().splitlines()
        assert line.startswith("error: ") and "Traceback" not in err
        assert f"{tmp_path / 'taken'}" in line and "is a file, not a folder" in line, line
        assert "/." not in line  # no hidden temporary file named
    assert (tmp_path / "taken").read_text() == "mine"


# ---------------------------------------------------------------------- D. predict
def test_predict_names_the_folds_a_run_has(trained, phantom_dir, tmp_path, capsys):
    run, _ = trained
    for command in (["predict", str(run)], ["blocks", "predict", "--model", str(run)],
                    ["unet", "predict", str(run), "--track", "rf-9"]):
        assert main([*command, "--data-dir", str(phantom_dir), "--images-subdir", "train",
                     "--fold", "3", "--out", str(tmp_path / "s.csv")]) == 2
        _one_error(capsys.readouterr().err, f"error: --fold 3: the run {run} has one fold, 0")
    assert not (tmp_path / "s.csv").exists()


def test_predict_aliases_take_predicts_options(capsys):
    """``blocks predict`` and ``unet predict`` are documented as aliases of ``predict``."""
    options = ("--fold", "--allow-gaps", "--device", "--threads", "--images-subdir", "--track")
    for command in (["predict", "R"], ["blocks", "predict", "--model", "R"],
                    ["unet", "predict", "R"]):
        argv = [*command, "--data-dir", "D", "--out", "o.csv", "--fold", "1", "--allow-gaps",
                "--device", "cpu", "--threads", "2"]
        args = build_parser(argv).parse_args(argv)
        assert (args.fold, args.allow_gaps, args.device, args.threads) == (1, True, "cpu", 2)
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = capsys.readouterr().out
        assert all(o in text for o in options), text
        assert "--fold FOLD           the fold whose trained model and thresholds predict" in text


def test_predict_does_not_check_truth_it_does_not_read(trained, copy, tmp_path, capsys):
    """A slice removed from train/ but not from train.csv stopped ``predict --allow-gaps``
    with "row ... has no image file", although predict reads no truth."""
    run, _ = trained
    (removed,) = _scans(copy).glob("slice_0002_*.png")
    removed.unlink()
    out = tmp_path / "s.csv"
    assert main(["predict", str(run), "--data-dir", str(copy), "--images-subdir", "train",
                 "--allow-gaps", "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "has no image file" not in captured.err
    assert len(pd.read_csv(out)) == (3 * 4 - 1) * 3


# ---------------------------------------------------------------------- E. newcomers
def test_the_predict_line_train_prints_runs_as_printed(trained, phantom_dir, tmp_path,
                                                       monkeypatch, capsys):
    run, printed = trained
    (line,) = [x for x in printed.splitlines() if x.startswith("predict: ")]
    assert line == ("predict: " + shlex.join(
        ["gitract", "predict", str(run), "--data-dir", str(phantom_dir), "--images-subdir",
         "train", "--out", "submission.csv"]))
    monkeypatch.chdir(tmp_path)
    words = shlex.split(line.removeprefix("predict: "))
    assert main([*words[1:], "--no-progress"]) == 0
    assert len(pd.read_csv(tmp_path / "submission.csv")) == 3 * 4 * 3
