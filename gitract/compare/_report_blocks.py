"""Report section on the block tracks' models: feature importance and chosen capacity.

Read from the run folder's saved models (``steps/fold*/<track>/model``): for each block
track with a tree classifier, the top features by importance (LightGBM: total gain;
random forest: mean decrease in impurity), each fold's importances as shares of its
total, averaged over folds; and the capacity search's trials (scored on validation
cases) with the values chosen per fold. A run folder without its ``steps/`` (a copy of
a committed report) gets no section.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gitract.tracks import load_block_track

__all__ = ["block_model_lines", "importances"]

TOP = 20


def importances(model) -> np.ndarray | None:
    """Shares (summing to 1) of a fitted tree classifier's importances; None otherwise."""
    est = getattr(model, "named_steps", {}).get("clf", model)
    booster = getattr(est, "booster_", None)
    values = (booster.feature_importance(importance_type="gain") if booster is not None
              else getattr(est, "feature_importances_", None))
    if values is None:
        return None
    values = np.asarray(values, dtype=float)
    total = values.sum()
    return values / total if total > 0 else values


def _folds(out: Path, name: str) -> list[Path]:
    return sorted(p for p in (out / "steps").glob(f"fold*/{name}/model")
                  if (p / "track.joblib").is_file())


def _importance_table(name: str, tracks) -> list[str]:
    names = tracks[0].config.feature_names(tracks[0].classes)
    shares = [importances(t.model) for t in tracks]
    shares = [s for s in shares if s is not None and len(s) == len(names)]
    if not shares:
        return []
    mean = np.mean(shares, axis=0)
    order = np.argsort(-mean, kind="stable")[:TOP]
    kind = "gain" if hasattr(getattr(tracks[0].model, "named_steps", {}).get(
        "clf", tracks[0].model), "booster_") else "impurity decrease"
    lines = [f"### {name}: top {len(order)} of {len(names)} features ({kind}, share of "
             f"the total, mean over {len(shares)} fold(s))", "",
             "| rank | feature | share |", "|---:|---|---:|"]
    lines += [f"| {r + 1} | `{names[i]}` | {mean[i]:.3f} |" for r, i in enumerate(order)]
    return lines + [""]


def _search_lines(name: str, tracks) -> list[str]:
    rows = []
    for k, t in enumerate(tracks):
        if not t.search:
            continue
        best = max(t.search, key=lambda x: (x["val_dice"], -x["trial"]))
        rows.append(f"| {name} | {k} | {len(t.search)} | {t.search[0]['val_dice']:.3f} | "
                    f"{best['val_dice']:.3f} | `{json.dumps(best['params'], sort_keys=True)}` |")
    return rows


def block_model_lines(out: str | Path, summary: dict) -> list[str]:
    """Markdown lines of the section (empty when no block track left its models)."""
    out = Path(out)
    tables, searches = [], []
    for name, t in summary.get("tracks", {}).items():
        if t.get("kind") != "blocks":
            continue
        tracks = [load_block_track(p) for p in _folds(out, name)]
        if not tracks:
            continue
        tables += _importance_table(name, tracks)
        searches += _search_lines(name, tracks)
    if not tables and not searches:
        return []
    lines = ["## Block tracks: feature importance and capacity", ""]
    if searches:
        lines += ["Capacity search (seeded random search; every trial fitted on the training "
                  "cases and scored on the VALIDATION cases' block grid: mean over organs of the "
                  "best Dice over thresholds; trial 0 is the configured setting):", "",
                  "| track | fold | trials | given: val Dice | chosen: val Dice | chosen "
                  "model_params |", "|---|---:|---:|---:|---:|---|", *searches, ""]
    return lines + tables
