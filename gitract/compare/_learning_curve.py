"""The data-regime curve: each track trained on nested subsets of each fold's training
cases, scored on the same test cases, and where the families' curves cross.

The plan (which cases train at each size) is made with the split and stored in
``splits.json`` (``learning_curve``), so it is fixed before any step runs. Each size is a
run of its own under ``curve/n<size>/`` (its ``splits.json``, ``steps/`` and tables), made
by the one engine; :func:`curve_table` collects their summaries into
``learning_curve.csv`` and :func:`curve_lines` writes the report's section.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from gitract.compare._report_tables import FAMILIES
from gitract.compare._statistics import validation_values
from gitract.data.splits import nested_subsets

__all__ = ["CURVE_DIR", "crossing_sentences", "curve_lines", "curve_plan", "curve_runs",
           "curve_table"]

#: The sub-folder of a run folder that holds one run per training size.
CURVE_DIR = "curve"


def curve_plan(folds: Sequence[tuple], sizes: Sequence[int], seed: int) -> dict[str, list]:
    """Per size (a string key, for JSON), per fold, the training cases: nested subsets of
    that fold's training cases drawn with ``seed + fold``; a size above a fold's number of
    training cases raises ``ValueError`` naming the fold."""
    plan: dict[str, list] = {str(n): [] for n in sizes}
    for k, (train, _, _) in enumerate(folds):
        try:
            subsets = nested_subsets(train, sizes, random_state=seed + k)
        except ValueError as exc:
            raise ValueError(f"learning_curve.train_cases: fold {k}: {exc}") from None
        for n in sizes:
            plan[str(n)].append(subsets[n])
    return plan


def curve_runs(splits: dict, folds: Sequence[tuple]):
    """``(size, sub_splits, sub_folds)`` of each training size of ``splits``'s plan: the
    split with each fold's training cases replaced by its subset."""
    for size, subsets in (splits.get("learning_curve") or {}).items():
        sub_folds = [(list(sub), list(val), list(test))
                     for sub, (_, val, test) in zip(subsets, folds)]
        sub_splits = {**{k: v for k, v in splits.items() if k != "learning_curve"},
                      "scheme": f"{splits['scheme']}; {size} training case(s) per fold "
                                "(nested, seeded subsets)",
                      "train_cases": int(size),
                      "folds": [{"train": t, "val": v, "test": te} for t, v, te in sub_folds]}
        yield int(size), sub_splits, sub_folds


def _point(folder: Path, n_cases: float, label: str) -> list[dict]:
    summary = json.loads((folder / "summary.json").read_text())
    stats = (summary.get("statistics") or {}).get("tracks") or {}
    val = validation_values(summary["tracks"])
    splits = summary["split"]
    slices = splits.get("train_slices")
    rows = []
    for name, t in summary["tracks"].items():
        iv = stats.get(name, {})
        row = {"point": label, "train_cases": n_cases,
               "train_slices": float(np.mean(slices)) if slices else math.nan,
               "track": name, "kind": t.get("kind"),
               "family": FAMILIES.get(t.get("kind"), t.get("kind")),
               "validation_score": val.get(name, {}).get("score", math.nan)}
        for metric in ("score", "dice"):
            m = iv.get(metric) or {}
            row[metric] = m.get("estimate", t.get(metric))
            row[f"{metric}_low"], row[f"{metric}_high"] = m.get("low"), m.get("high")
        rows.append(row)
    return rows


def curve_table(out: str | Path) -> pd.DataFrame:
    """Every size's per-track score and Dice with their case-level bootstrap intervals, plus
    the main run (every training case) as the last point; empty without a curve."""
    out = Path(out)
    splits = json.loads((out / "splits.json").read_text())
    plan = splits.get("learning_curve") or {}
    if not plan:
        return pd.DataFrame()
    rows = []
    for size in plan:
        rows += _point(out / CURVE_DIR / f"n{size}", float(size), f"n{size}")
    n_all = float(np.mean([len(f["train"]) for f in splits["folds"]]))
    rows += _point(out, n_all, "all")
    return pd.DataFrame(rows)


def _representatives(table: pd.DataFrame) -> dict[str, str]:
    """Per family, the track with the highest validation score averaged over the curve."""
    val = table.groupby(["family", "track"], sort=False)["validation_score"].mean()
    out = {}
    for (family, track), v in val.items():
        best = out.get(family)
        if best is None or (math.isfinite(v) and not val[(family, best)] >= v):
            out[family] = track
    return out


def crossing_sentences(table: pd.DataFrame) -> list[str]:
    """One sentence per pair of families (each by its representative, chosen on
    validation): between which training sizes their score curves cross, or that they do
    not within the range measured (point estimates; the table gives the intervals)."""
    if table.empty:
        return []
    reps = _representatives(table)
    sizes = sorted(table["train_cases"].unique())
    score = {t: table[table["track"] == t].set_index("train_cases")["score"].astype(float)
             for t in reps.values()}
    lines = []
    for (fa, a), (fb, b) in combinations(reps.items(), 2):
        diff = [(n, score[a].get(n, math.nan) - score[b].get(n, math.nan)) for n in sizes]
        diff = [(n, d) for n, d in diff if math.isfinite(d)]
        if not diff:
            continue
        span = f"{_n(diff[0][0])} to {_n(diff[-1][0])} training cases"
        flips = [(n0, n1, d1 > 0) for (n0, d0), (n1, d1) in zip(diff, diff[1:])
                 if np.sign(d0) != np.sign(d1) and d0 != 0 and d1 != 0]
        who = f"{fa} ({a}) and {fb} ({b})"
        if not flips:
            top, low = (fa, fb) if diff[0][1] > 0 else (fb, fa)
            lines.append(f"- {who}: the curves do not cross from {span}; {top} scores above "
                         f"{low} at every size.")
            continue
        parts = [f"between {_n(n0)} and {_n(n1)} cases ({fa if up else fb} above from then)"
                 for n0, n1, up in flips]
        lines.append(f"- {who}: the curves cross {'; '.join(parts)} (within {span}).")
    return lines


def _n(value: float) -> str:
    return f"{value:g}"


def curve_lines(table: pd.DataFrame) -> list[str]:
    """``## Data-regime curve``: the table of score against training cases and slices and
    the crossing sentences (the figure is in the report's figures)."""
    if table.empty:
        return []
    lines = [
        "## Data-regime curve", "",
        "Every track trained again on nested, seeded subsets of each fold's training cases "
        "(a smaller subset lies inside every larger one; validation and test cases "
        "unchanged), and scored on the same test cases; *all* is the main run. Score and "
        "Dice are pooled over the test cases with a 95% case-level bootstrap interval (test "
        "cases resampled; the interval does not include the variance of which training "
        "cases were drawn). Each family is represented by its track with the highest "
        "validation score over the curve.", "",
        "| training cases | training slices | track | Score [95% CI] | Dice [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(f"| {_n(r['train_cases'])} | {_count(r['train_slices'])} | {r['track']} | "
                     f"{_interval(r, 'score')} | {_interval(r, 'dice')} |")
    return [*lines, "", *crossing_sentences(table), ""]


def _count(value: float) -> str:
    return f"{value:,.0f}" if math.isfinite(float(value)) else "n/a"


def _interval(row, metric: str) -> str:
    est, lo, hi = (float(row[metric]) if row[metric] is not None else math.nan,
                   row[f"{metric}_low"], row[f"{metric}_high"])
    if not math.isfinite(est):
        return "n/a"
    if lo is None or hi is None or not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        return f"{est:.3f}"
    return f"{est:.3f} [{float(lo):.2f}, {float(hi):.2f}]"
