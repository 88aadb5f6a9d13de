"""The block tracks' fitted models as tables: feature importance and capacity search.

Read from the run folder's saved models (``steps/fold*/<track>/model``) when the run is
aggregated and written beside the other run tables (``importance.csv``,
``capacity.csv``), so that a copy of the run folder without its ``steps/`` (a committed
report) can still be reported on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from gitract.tracks import load_block_track

__all__ = ["CAPACITY_FILE", "IMPORTANCE_FILE", "block_model_tables", "importances"]

IMPORTANCE_FILE = "importance.csv"
CAPACITY_FILE = "capacity.csv"
_IMPORTANCE_COLUMNS = ["track", "fold", "feature", "share", "importance"]
_CAPACITY_COLUMNS = ["track", "fold", "trial", "val_dice", "seconds", "params"]


def _estimator(model):
    return getattr(model, "named_steps", {}).get("clf", model)


def importances(model) -> np.ndarray | None:
    """Shares (summing to 1) of a fitted tree classifier's importances; None otherwise."""
    est = _estimator(model)
    booster = getattr(est, "booster_", None)
    values = (booster.feature_importance(importance_type="gain") if booster is not None
              else getattr(est, "feature_importances_", None))
    if values is None:
        return None
    values = np.asarray(values, dtype=float)
    total = values.sum()
    return values / total if total > 0 else values


def _model_folders(out: Path, name: str) -> list[tuple[int, Path]]:
    found = []
    for p in (out / "steps").glob(f"fold*/{name}/model"):
        fold = p.parent.parent.name.removeprefix("fold")
        if fold.isdigit() and (p / "track.joblib").is_file():
            found.append((int(fold), p))
    return sorted(found)


def block_model_tables(out: str | Path, names: Iterable[str]
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(importance, capacity)`` of the block tracks ``names`` in run folder ``out``.

    importance: one row per (track, fold, feature), the feature's share of the model's
    total importance (LightGBM: gain; random forest: mean decrease in impurity).
    capacity: one row per (track, fold, trial) of the capacity search on the validation
    cases (``params`` as JSON). Tracks without saved models give no rows.
    """
    out = Path(out)
    importance, capacity = [], []
    for name in names:
        for fold, folder in _model_folders(out, name):
            track = load_block_track(folder)
            shares = importances(track.model)
            features = track.config.feature_names(track.classes)
            if shares is not None and len(shares) == len(features):
                kind = ("gain" if hasattr(_estimator(track.model), "booster_")
                        else "impurity decrease")
                importance += [{"track": name, "fold": fold, "feature": f, "share": float(s),
                                "importance": kind} for f, s in zip(features, shares)]
            capacity += [{"track": name, "fold": fold, "trial": int(t["trial"]),
                          "val_dice": float(t["val_dice"]), "seconds": float(t["seconds"]),
                          "params": json.dumps(t["params"], sort_keys=True)}
                         for t in track.search]
    return (pd.DataFrame(importance, columns=_IMPORTANCE_COLUMNS),
            pd.DataFrame(capacity, columns=_CAPACITY_COLUMNS))
