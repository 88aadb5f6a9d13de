"""A track kind added from outside the package: one settings dataclass, one adapter, one
``register`` call. It goes through config checks, ``gitract compare``, ``gitract predict``
and the report without an edit to any gitract file (docs/DESIGN.md, "Adding a track kind").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gitract.cli import main
from gitract.config import ConfigError, config_from_dict
from gitract.tracks import (
    BlockSettings,
    classifier,
    classifiers,
    normalize_stack,
    register,
    track_kind,
    track_kinds,
    unregister,
)
from gitract.utils.schema import at_least, check_dataclass, problem_of


# ------------------------------------------------------------------- the toy kind
@dataclass(frozen=True)
class CentroidSettings:
    """Nearest centroid on a pixel's intensity: each class's mean intensity."""

    temperature: float = 0.05
    max_pixels: int = 2000
    random_state: int = 0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")

    @classmethod
    def from_dict(cls, data, path=""):
        checked = check_dataclass(cls, data, path, rules={"max_pixels": at_least(1)})
        try:
            return cls(**checked)
        except ValueError as exc:
            raise problem_of(exc, [f.name for f in fields(cls)], path) from None


class CentroidAdapter:
    def __init__(self, settings: CentroidSettings, *, random_state: int) -> None:
        self.settings = settings
        self.centroids_ = None

    def fit(self, index, train_keys, val_keys, *, parallel=None):
        gen = np.random.default_rng(self.settings.random_state)
        sums = np.zeros(len(index.classes) + 1)
        counts = np.zeros(len(index.classes) + 1)
        for key in train_keys:  # one scan at a time
            stack = index.read(key)
            image = normalize_stack(stack).ravel()
            labels = np.zeros(image.shape, np.int64)
            for k in range(len(stack.classes)):
                labels[stack.masks[..., k].ravel()] = k + 1
            pick = gen.choice(image.size, size=min(image.size, self.settings.max_pixels),
                              replace=False)
            np.add.at(sums, labels[pick], image[pick])
            np.add.at(counts, labels[pick], 1)
        self.centroids_ = sums / np.maximum(counts, 1)
        return self

    def predict_proba_stack(self, stack):
        image = normalize_stack(stack)[..., None]
        logits = -np.abs(image - self.centroids_) / self.settings.temperature
        proba = np.exp(logits - logits.max(-1, keepdims=True))
        proba /= proba.sum(-1, keepdims=True)
        return proba[..., 1:].astype(np.float32)  # organ columns

    fit_seconds = math.nan
    training = None

    @property
    def model_bytes(self) -> int:
        return int(self.centroids_.nbytes)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "centroids.json").write_text(json.dumps(self.centroids_.tolist()))

    def load(self, directory: Path, *, device=None, num_threads=None):
        self.centroids_ = np.array(json.loads((directory / "centroids.json").read_text()))
        return self


@pytest.fixture
def centroid_kind():
    register("centroid", settings=CentroidSettings, adapter=CentroidAdapter)
    try:
        yield "centroid"
    finally:
        unregister("centroid")
    assert "centroid" not in track_kinds()


# ------------------------------------------------------------------------ the test
TINY = {
    "name": "tiny-centroid",
    "seed": 0,
    "data": {"kind": "phantom",
             "phantom": {"n_cases": 3, "n_days": 1, "n_slices": 4, "sizes": [[64, 64]]}},
    "split": {"n_folds": 1, "n_test": 1, "test_fraction": None, "val_fraction": 0.5},
    "report": {"n_example_slices": 1},
    "tracks": [{"name": "nearest-centroid", "kind": "centroid",
                "params": {"temperature": 0.1, "min_sizes": [0, 16]}}],
}


def test_a_kind_registered_from_a_test_runs_end_to_end(centroid_kind, tmp_path,
                                                        monkeypatch, capsys):
    monkeypatch.setenv("GITRACT_CACHE", str(tmp_path / "cache"))
    # Config checks: the kind is known, its params parsed once, a bad key named.
    config = config_from_dict(TINY)
    track = config.tracks[0]
    assert isinstance(track.settings, CentroidSettings) and track.settings.temperature == 0.1
    assert track.tuning.options([0])["min_sizes"] == [0, 16]
    bad = json.loads(json.dumps(TINY))
    bad["tracks"][0]["params"] = {"temprature": 0.1}
    with pytest.raises(ConfigError, match=r"tracks\[0\]\.params\.temprature: unknown key "
                                          r"\(did you mean temperature\?\)"):
        config_from_dict(bad)
    bad["tracks"][0]["params"] = {"max_pixels": 0}
    with pytest.raises(ConfigError, match=r"tracks\[0\]\.params\.max_pixels: must be >= 1"):
        config_from_dict(bad)
    bad["tracks"][0]["params"] = {"temperature": -1.0}
    with pytest.raises(ConfigError, match=r"tracks\[0\]\.params\.temperature: must be > 0"):
        config_from_dict(bad)

    # gitract compare, then gitract predict with the trained track, then the report.
    path = tmp_path / "centroid.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    run = tmp_path / "run"
    assert main(["compare", str(path), "--out", str(run), "--no-progress"]) == 0
    written = json.loads((run / "config.json").read_text())["tracks"]
    assert written == TINY["tracks"]  # the params as written
    summary = json.loads((run / "summary.json").read_text())
    assert summary["tracks"]["nearest-centroid"]["kind"] == "centroid"
    assert 0.0 <= summary["tracks"]["nearest-centroid"]["dice"] <= 1.0
    assert "nearest-centroid" in (run / "report.md").read_text()
    out = tmp_path / "sub.csv"
    data = run / ".." / "cache"
    scans = next(p for p in data.iterdir() if p.name.startswith("phantom-"))
    assert main(["predict", str(run), "--data-dir", str(scans), "--images-subdir", "train",
                 "--out", str(out)]) == 0
    sub = pd.read_csv(out, keep_default_na=False)
    assert list(sub.columns) == ["id", "class", "predicted"] and len(sub) == 3 * 3 * 4
    capsys.readouterr()


def test_an_unknown_kind_lists_the_registered_ones():
    raw = {"tracks": [{"name": "x", "kind": "centroids", "params": {}}]}
    with pytest.raises(ConfigError, match=r"tracks\[0\]\.kind: must be one of blocks, cnn, "
                                          r"nnunet, unet, unetpp, deeplabv3plus, got 'centroids'"):
        config_from_dict(raw)


def test_one_table_names_the_kinds_and_the_block_classifiers():
    assert track_kinds()[:6] == ("blocks", "cnn", "nnunet", "unet", "unetpp", "deeplabv3plus")
    assert classifiers() == ("rf", "lightgbm", "cnn")
    assert classifier("cnn") is track_kind("cnn")  # the kind and the classifier: one entry
    with pytest.raises(ValueError, match="must be one of rf, lightgbm, cnn, got 'lgbm'"):
        classifier("lgbm")
    with pytest.raises(ValueError, match="already"):
        register("rf", settings=CentroidSettings, adapter=CentroidAdapter)
    assert type(BlockSettings(classifier="rf", model_params={"n_estimators": 3})
                .make_model()).__name__ == "Pipeline"


def test_settings_are_parsed_once_per_run(monkeypatch, tmp_path):
    """From the YAML to fit, a track's params are parsed once: when the config loads."""
    from gitract.compare import run_comparison
    from gitract.tracks import blocks

    monkeypatch.setenv("GITRACT_CACHE", str(tmp_path / "cache"))
    calls = []
    original = blocks.BlockSettings.from_dict.__func__
    monkeypatch.setattr(blocks.BlockSettings, "from_dict",
                        classmethod(lambda cls, *a, **k: calls.append(1)
                                    or original(cls, *a, **k)))
    raw = json.loads(json.dumps(TINY))
    raw["tracks"] = [{"name": "rf", "kind": "blocks",
                      "params": {"block_size": 9, "step": 8, "n_per_class": 10,
                                 "background_cap": 20,
                                 "model_params": {"n_estimators": 3, "n_jobs": 1}}}]
    config = config_from_dict(raw)
    assert len(calls) == 1
    run_comparison(config, tmp_path / "run", progress=False, report=False)
    assert len(calls) == 1
