"""Report section on the block tracks' models: feature importance and chosen capacity.

Read from the run tables ``importance.csv`` and ``capacity.csv``
(:mod:`gitract.compare._block_models`, written when the run is aggregated); a run folder
made before those tables existed is read from its saved models when it still has its
``steps/``. For each block track with a tree classifier: the top features by importance,
each fold's importances as shares of its total, averaged over folds; and the capacity
search's trials (scored on validation cases) with the values chosen per fold.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gitract.compare._block_models import CAPACITY_FILE, IMPORTANCE_FILE, block_model_tables

__all__ = ["block_model_lines"]

TOP = 20


def _read(path: Path) -> pd.DataFrame | None:
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        return None
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame()
    return frame if "track" in frame else pd.DataFrame(columns=["track", "fold"])


def _tables(out: Path, names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    importance, capacity = _read(out / IMPORTANCE_FILE), _read(out / CAPACITY_FILE)
    if importance is None or capacity is None:
        return block_model_tables(out, names)
    return importance, capacity


def _importance_table(name: str, rows: pd.DataFrame) -> list[str]:
    if rows.empty:
        return []
    folds = rows["fold"].nunique()
    # Mean over folds, features in the models' own order (ties keep it).
    mean = rows.groupby("feature", sort=False)["share"].sum() / folds
    top = mean.iloc[pd.Series(-mean.to_numpy()).argsort(kind="stable").to_numpy()[:TOP]]
    lines = [f"### {name}: top {len(top)} of {len(mean)} features "
             f"({rows['importance'].iloc[0]}, share of the total, mean over {folds} fold(s))",
             "", "| rank | feature | share |", "|---:|---|---:|"]
    lines += [f"| {r + 1} | `{f}` | {s:.3f} |" for r, (f, s) in enumerate(top.items())]
    return lines + [""]


def _search_lines(name: str, rows: pd.DataFrame) -> list[str]:
    out = []
    for fold, trials in rows.groupby("fold", sort=True):
        trials = trials.sort_values("trial")
        best = trials.loc[trials["val_dice"].eq(trials["val_dice"].max())].iloc[0]
        given = trials.iloc[0]
        out.append(f"| {name} | {fold} | {len(trials)} | {given['val_dice']:.3f} | "
                   f"{best['val_dice']:.3f} | `{best['params']}` |")
    return out


def block_model_lines(out: str | Path, summary: dict) -> list[str]:
    """Markdown lines of the section (empty when no block track left its models)."""
    out = Path(out)
    names = [n for n, t in summary.get("tracks", {}).items() if t.get("kind") == "blocks"]
    if not names:
        return []
    importance, capacity = _tables(out, names)
    tables, searches = [], []
    for name in names:
        tables += _importance_table(name, importance[importance["track"] == name])
        searches += _search_lines(name, capacity[capacity["track"] == name])
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
