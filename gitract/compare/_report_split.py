"""The report's account of which cases a split tests and which the config left out."""

from __future__ import annotations

__all__ = ["split_coverage_lines"]


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
