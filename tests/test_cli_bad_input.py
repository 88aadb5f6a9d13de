"""Bad input that used to end as ``error: unexpected`` (exit 1), or late: each now ends with
exactly one stderr line ``error: <file or key>: <problem>``, exit 2, before any work and
with no run folder or output file left behind. SIGTERM ends like Ctrl-C."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gitract.cli import main
from gitract.data.phantom import PhantomConfig, write_phantom

#: A tiny comparison on a phantom folder given as data.path: a block track and a U-Net.
CONFIG = {
    "name": "tiny-bad",
    "seed": 0,
    "data": {"kind": "phantom"},
    "split": {"n_folds": 1, "n_test": 1, "test_fraction": None, "val_fraction": 0.5},
    "report": {"n_example_slices": 1},
    "tracks": [
        {"name": "rf", "kind": "blocks",
         "params": {"classifier": "rf", "block_size": 9, "step": 8, "n_per_class": 10,
                    "background_cap": 20, "model_params": {"n_estimators": 5, "n_jobs": 1}}},
        {"name": "unet", "kind": "unet",
         "params": {"image_size": 32, "base_channels": 4, "depth": 2, "max_epochs": 1,
                    "batch_size": 4, "num_threads": 1}},
    ],
}


@pytest.fixture(autouse=True)
def cache_env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GITRACT_CACHE", str(tmp_path_factory.getbasetemp() / "bad-cache"))


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    """A labelled phantom folder (Kaggle layout), never modified: copy it to damage it."""
    return write_phantom(tmp_path_factory.mktemp("bad") / "data",
                         PhantomConfig(n_cases=3, n_days=1, n_slices=4, sizes=((64, 64),)))


def _copy(phantom: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(phantom, tmp_path / "data"))


def _config(tmp_path: Path, data: Path, **edits) -> Path:
    raw = copy.deepcopy(CONFIG)
    raw["data"]["path"] = str(data)
    for key, value in edits.items():
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[parts[-1]] = value
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def one_error_line(capsys) -> str:
    """The single stderr line of a failed command (and no traceback anywhere)."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: "), lines[0]
    assert "unexpected" not in lines[0], lines[0]
    return lines[0]


def _usage_error(capsys, argv: list[str]) -> str:
    """The argparse error line of ``argv`` (exit 2)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


# ------------------------------------------------------------------ 1, 2: no masks
def test_compare_on_a_folder_without_train_csv(phantom, tmp_path, capsys):
    data = _copy(phantom, tmp_path)
    (data / "train.csv").unlink()
    out = tmp_path / "run"
    assert main(["compare", str(_config(tmp_path, data)), "--out", str(out)]) == 2
    assert one_error_line(capsys) == (
        f"error: {data}: train.csv is missing (training and scoring need its masks; a "
        "Kaggle-layout folder holds train.csv next to train/)")
    assert not out.exists()


def test_blocks_train_on_data_without_masks(phantom, tmp_path, capsys):
    data = _copy(phantom, tmp_path)
    (data / "train.csv").unlink()
    out = tmp_path / "run"
    assert main(["blocks", "train", "--data", "kaggle", "--path", str(data),
                 "--out", str(out)]) == 2
    assert one_error_line(capsys).startswith(f"error: {data}: train.csv is missing")
    assert not out.exists()
