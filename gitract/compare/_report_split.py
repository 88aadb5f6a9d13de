"""The report's account of which cases a split tests and which the config left out."""

from __future__ import annotations

import pandas as pd

__all__ = ["split_coverage_lines", "volume_lines"]

#: Fewer slices than this per case-day: a scan much shorter than the competition's
#: (80 to 144 slices per case-day), so its 3D Hausdorff is not the competition's term.
SHORT_STACK = 40


def volume_lines(per_slice: pd.DataFrame) -> list[str]:
    """A bullet line on how many slices the test case-days hold (their 3D Hausdorff is
    computed over those slices, placed at their slice numbers), with a warning when they
    are far shorter than a full scan.

    Examples
    --------
    >>> rows = pd.DataFrame({"key": ["a", "a", "b"], "id": ["a_1", "a_7", "b_3"]})
    >>> volume_lines(rows)[0][:52]
    '- Test case-days hold 1-2 (median 1.5) slices each: '
    """
    if per_slice.empty or not {"key", "id"} <= set(per_slice.columns):
        return []
    counts = per_slice.groupby("key")["id"].nunique()
    span = (f"{counts.min()}" if counts.min() == counts.max() else
            f"{counts.min()}-{counts.max()} (median {counts.median():g})")
    line = (f"- Test case-days hold {span} slices each: the 3D Hausdorff of a case-day is "
            "computed over those slices, placed at their slice numbers")
    if counts.max() < SHORT_STACK:
        line += (f". **A full scan holds 80 to 144 slices**: on case-days this short the "
                 "Hausdorff term (0.6 of the score) is not the competition's, and the score is "
                 "comparable between tracks of this run only")
    return [line + "."]


def split_coverage_lines(splits: dict) -> list[str]:
    """Bullet lines: how many cases are tested (every one, or which never are), and each
    ``data.exclude`` id with the scans it dropped.

    Computed from the folds, so a run folder written before ``splits.json`` recorded
    ``untested`` reads the same.

    Examples
    --------
    >>> split_coverage_lines({"cases": ["c1", "c2", "c3"],
    ...                       "folds": [{"train": ["c1"], "val": ["c2"], "test": ["c3"]}],
    ...                       "excluded": {"c4_day1": ["c4_day1"], "c9": []}})
    ... # doctest: +NORMALIZE_WHITESPACE
    ['- Tested: 1 of 3 cases; **2 never tested** (they only train or validate): c1, c2.',
     '- Excluded by `data.exclude`: c4_day1 (1 scan: c4_day1); c9 (not in the dataset).']
    """
    cases = list(splits["cases"])
    tested = {c for f in splits["folds"] for c in f.get("test", [])}
    untested = [c for c in cases if c not in tested]
    if not tested:
        lines = [f"- Tested: none of the {len(cases)} cases (a training run)."]
    elif untested:
        lines = [f"- Tested: {len(cases) - len(untested)} of {len(cases)} cases; "
                 f"**{len(untested)} never tested** (they only train or validate): "
                 f"{', '.join(untested)}."]
    else:
        lines = [f"- Tested: every one of the {len(cases)} cases, once."]
    holdout = splits.get("holdout") or []
    if holdout:
        lines.append(f"- Locked hold-out: {len(holdout)} case(s) set aside before any fold was "
                     f"made, scored only by the final step: {', '.join(holdout)}.")
    excluded = splits.get("excluded") or {}
    if excluded:
        parts = []
        for name, keys in excluded.items():
            if keys:
                parts.append(f"{name} ({len(keys)} scan{'s' if len(keys) != 1 else ''}: "
                             f"{', '.join(keys)})")
            else:
                parts.append(f"{name} (not in the dataset)")
        lines.append("- Excluded by `data.exclude`: " + "; ".join(parts) + ".")
    return lines
