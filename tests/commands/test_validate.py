"""``gitract validate`` on tiny Kaggle-layout datasets written by the test itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gitract.cli import main
from gitract.data.kaggle import kaggle_png_name, write_kaggle_png, write_train_csv
from gitract.data.rle import rle_encode

CLASSES = ("large_bowel", "small_bowel", "stomach")
H, W = 5, 7


def _write(root: Path) -> Path:
    """Two cases, three case-days, 2 slices each; stomach empty everywhere."""
    gen = np.random.default_rng(0)
    rows = []
    for case, day in [("case1", "day1"), ("case1", "day2"), ("case2", "day5")]:
        scans = root / "train" / case / f"{case}_{day}" / "scans"
        for number in (1, 2):
            write_kaggle_png(
                scans / kaggle_png_name(number, (H, W), (1.5, 1.5)),
                gen.integers(0, 50000, size=(H, W)).astype(np.uint16),
            )
            mask = np.zeros((H, W), dtype=bool)
            mask[1:3, 2:5] = True
            for cls in CLASSES:
                rle = rle_encode(mask) if cls == "large_bowel" or number == 2 else ""
                rows.append(
                    (
                        f"{case}_{day}_slice_{number:04d}",
                        cls,
                        "" if cls == "stomach" else rle,
                    )
                )
    write_train_csv(
        pd.DataFrame(rows, columns=["id", "class", "segmentation"]), root / "train.csv"
    )
    return root


@pytest.fixture
def root(tmp_path) -> Path:
    return _write(tmp_path / "data")


def test_clean_dataset_exits_0_with_summary(root, capsys):
    assert main(["validate", str(root)]) == 0
    out = capsys.readouterr().out
    assert "cases: 2  case-days: 3  slices: 6  csv rows: 18" in out
    assert f"{H}x{W}: 6" in out and "1.50x1.50: 6" in out
    assert "large_bowel 0.0%, small_bowel 50.0%, stomach 100.0%" in out
    assert "problems: 0" in out


def test_problems_collected_one_line_each(root, capsys):
    frame = pd.read_csv(root / "train.csv", dtype=str, keep_default_na=False)
    frame.loc[0, "segmentation"] = f"1 {H * W + 5}"  # out of bounds
    frame.loc[3, "segmentation"] = "2 2 7"  # malformed
    frame = pd.concat([frame, frame.iloc[[5]]])  # duplicate (id, class)
    frame.to_csv(root / "train.csv", index=False)
    scans = root / "train" / "case2" / "case2_day5" / "scans"
    write_kaggle_png(
        scans / kaggle_png_name(1, (H, W), (1.5, 1.5)),
        np.full((H, W), 7, dtype=np.uint16),
    )  # constant
    (scans / kaggle_png_name(4, (H, W), (1.5, 1.5))).write_bytes(b"\x89PNG junk")

    assert main(["validate", str(root)]) == 2
    lines = capsys.readouterr().out.splitlines()
    problems = lines[lines.index("problems: 7") + 1 :]
    assert len(problems) == 7, problems
    expected = [
        ("case1_day1_slice_0001 large_bowel", "out of bounds"),
        ("case1_day1_slice_0002 large_bowel", "odd number"),
        ("line 20", "duplicate row"),
        ("slice_0001_7_5_1.50_1.50.png", "constant image"),
        ("slice_0004_7_5_1.50_1.50.png", "not a PNG"),
        ("slice_0004_7_5_1.50_1.50.png", "image has no rows"),
        ("case2_day5", "gap in the slice stack: missing slice(s) 3"),
    ]
    for where, what in expected:
        assert sum(where in line and what in line for line in problems) == 1, (
            where,
            problems,
        )


def test_csv_option(root, tmp_path, capsys):
    moved = tmp_path / "labels.csv"
    (root / "train.csv").rename(moved)
    assert main(["validate", str(root), "--csv", str(moved)]) == 0
    assert f"csv: {moved}" in capsys.readouterr().out


def test_unlabelled_folder_is_valid(root, capsys):
    (root / "train.csv").unlink()
    assert main(["validate", str(root)]) == 0
    out = capsys.readouterr().out
    assert "csv: none found (masks not checked)" in out and "slices: 6" in out
    assert "warning: " + str(root / "train.csv") + ": not found: no mask was checked" in out
