"""The report's main table and written summary, generated from ``summary.json``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from gitract.compare._report_statistics import (
    best_lines,
    converged_cell,
    interval_text,
    plural,
)
from gitract.compare._statistics import validation_values

#: The report's words for each track kind (the written summary ranks these families).
FAMILIES = {"blocks": "classical block classifiers", "cnn": "CNN block classifiers",
            "unet": "U-Net", "unetpp": "U-Net++", "deeplabv3plus": "DeepLabV3+"}

#: Columns of the main table: (key, header, lower is better, format).
_ABBREV = {"large_bowel": "LB", "small_bowel": "SB", "stomach": "St"}

_COLUMNS = [
    ("dice", "Dice", False, "{:.3f}"),
    ("hausdorff", "Hausdorff", True, "{:.3f}"),
    ("score", "Score", False, "{:.3f}"),
    ("localisation_mm", "Centroid err. (mm)", True, "{:.2f}"),
    ("empty_fp_rate", "FP on empty slices", True, "{:.2f}"),
    ("fit_s", "Fit (s)", True, "{:.1f}"),
    ("ms_per_slice", "Infer (ms/slice)", True, "{:.0f}"),
    ("model_bytes", "Model size", True, None),
]


def _value(track: dict, key: str) -> float:
    if ":" in key:
        metric, cls = key.split(":")
        return track["per_class"].get(cls, {}).get(metric, math.nan)
    v = track.get(key)
    return math.nan if v is None else float(v)


def _fmt_bytes(n: float) -> str:
    if not math.isfinite(n):
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _nan(v: Any) -> float:
    return math.nan if v is None else float(v)


def _columns(summary: dict) -> list[tuple[str, str, bool, str | None]]:
    """Per-class Dice columns for the run's classes, then the shared columns."""
    first = next(iter(summary["tracks"].values()), None)
    classes = list(first["per_class"]) if first else []
    per_class = [(f"dice:{c}", f"Dice {_ABBREV.get(c, c)}", False, "{:.3f}") for c in classes]
    return per_class + _COLUMNS


def _over_seeds(summary: dict, name: str, key: str) -> dict | None:
    """A metric's entry over the training seeds (``summary["seeds"]``: mean, sd, low,
    high), None for a run of one seed."""
    return ((summary.get("seeds") or {}).get("tracks") or {}).get(name, {}).get(key)


def _pooled(summary: dict, name: str, key: str) -> float | None:
    """A metric pooled over every test case (``summary["statistics"]``; with several
    seeds its mean over seeds), None if absent."""
    seeds = _over_seeds(summary, name, key)
    if seeds is not None:
        return _nan(seeds["mean"])
    stats = (summary.get("statistics") or {}).get("tracks", {}).get(name)
    if not stats:
        return None
    if key.startswith("dice:"):
        return _nan(stats["per_class"].get(key.split(":")[1], {}).get("dice"))
    return _nan(stats[key]["estimate"]) if key in ("dice", "hausdorff", "score") else None


def main_table(summary: dict) -> pd.DataFrame:
    """One row per track with the report's numeric columns: Dice, Hausdorff and score pooled
    over the test cases where ``summary["statistics"]`` has them, otherwise (and for the
    other columns) the means over folds of ``summary["tracks"]``."""
    rows = []
    for name, t in summary["tracks"].items():
        row = {"track": name}
        for key, _, _, _ in _columns(summary):
            pooled = _pooled(summary, name, key)
            row[key] = _nan(_value(t, key)) if pooled is None else pooled
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown_table(summary: dict, classes: list[str]) -> str:
    table = main_table(summary)
    cols = _columns(summary)
    stats = summary.get("statistics") or {}
    intervals = stats.get("tracks") or {}
    by_fold = summary.get("n_folds", 1) > 1
    deep = {name for name, t in summary["tracks"].items() if t.get("kind") != "blocks"}
    extra = (["Score by fold (mean ± sd)"] if by_fold else []) + (["Converged"] if deep else [])
    header = "| track | " + " | ".join([*(h for _, h, _, _ in cols), *extra]) + " |"
    lines = [header, "|" + "---|" * (len(cols) + len(extra) + 1)]
    best = {}
    for key, _, lower, _ in cols:
        vals = table[key].to_numpy(dtype=float)
        if np.isfinite(vals).any():
            best[key] = np.nanmin(vals) if lower else np.nanmax(vals)
    std = {name: t.get("std", {}) for name, t in summary["tracks"].items()}
    for _, row in table.iterrows():
        name, cells = row["track"], []
        for key, _, _, fmt in cols:
            v = row[key]
            text = _fmt_bytes(v) if fmt is None else ("n/a" if not math.isfinite(v) else fmt.format(v))
            seeds = _over_seeds(summary, name, key)
            if seeds is not None:
                text = interval_text({"estimate": seeds["mean"], "low": seeds["low"],
                                      "high": seeds["high"]})
                if math.isfinite(_nan(seeds.get("sd"))):
                    text = text.replace(" [", f" ± {seeds['sd']:.3f} [", 1)
            elif key in ("dice", "hausdorff", "score") and name in intervals:
                text = interval_text(intervals[name][key])
            else:
                sd = std[name].get(key)
                if sd is not None and math.isfinite(_nan(sd)):
                    text += f" ± {sd:.3f}"
            if key in best and math.isfinite(v) and np.isclose(v, best[key]):
                text = f"**{text}**"
            cells.append(text)
        if by_fold:
            t = summary["tracks"][name]
            sd = _nan(t.get("std", {}).get("score"))
            cells.append(f"{_nan(t.get('score')):.3f}" + (f" ± {sd:.3f}" if math.isfinite(sd)
                                                         else ""))
        if deep:
            cells.append(converged_cell(stats, name, deep=name in deep))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def family_representatives(tracks: dict, test_scores: dict[str, float]
                           ) -> tuple[dict[str, str], str]:
    """Each family's representative track and the rule that chose it: the highest
    validation score where every track of the run has one (the test cases choose nothing),
    else, for an older run folder, the highest test score."""
    val = {n: v.get("score", math.nan) for n, v in validation_values(tracks).items()}
    on_validation = bool(val) and all(math.isfinite(v) for v in val.values())
    key = val if on_validation else test_scores
    chosen: dict[str, str] = {}
    for name, t in tracks.items():
        family = FAMILIES.get(t.get("kind"), t.get("kind"))
        if not math.isfinite(float(test_scores.get(name, math.nan))):
            continue
        if family not in chosen or key[name] > key[chosen[family]]:
            chosen[family] = name
    return chosen, "validation" if on_validation else "test"


def family_lines(tracks: dict, test_scores: dict[str, float]) -> list[str]:
    """The written summary's ranking of the families, each by its representative."""
    chosen, rule = family_representatives(tracks, test_scores)
    if len(chosen) < 2:
        return []
    ordered = sorted(chosen.items(), key=lambda kv: -float(test_scores[kv[1]]))
    parts = [f"{k} ({n}, {float(test_scores[n]):.3f})" for k, n in ordered]
    how = ("each family's track with the highest validation score" if rule == "validation"
           else "each family's track with the highest test score (no validation scores "
           "recorded)")
    return ["- By family, ranked by test score (point estimates; representative: "
            f"{how}): " + "; ".join(parts) + "."]


def written_summary(summary: dict) -> str:
    """A few sentences on which approach wins where, generated from the numbers."""
    tracks = summary["tracks"]
    if not tracks:
        return "No track finished."
    table = main_table(summary)
    lines = []

    def best(key, lower=False):
        vals = table.set_index("track")[key].astype(float).dropna()
        if vals.empty:
            return None, math.nan
        name = vals.idxmin() if lower else vals.idxmax()
        return name, float(vals[name])

    classes = list(next(iter(tracks.values()))["per_class"])
    stats = summary.get("statistics") or {}
    if (stats.get("comparisons") or {}).get("score", {}).get("reference") is not None:
        lines += best_lines(stats, classes)
    else:  # a run without per-case tables: no interval to judge the ranking by
        name, v = best("score")
        lines.append(f"- Highest competition score: {name} ({v:.3f}); no interval available.")
        name, v = best("dice")
        lines.append(f"- Highest mean Dice: {name} ({v:.3f}); no interval available.")
    scores = table.set_index("track")["score"].astype(float)
    lines += family_lines(tracks, scores.to_dict())
    sizes = {}
    for name, t in tracks.items():
        bs = (t.get("params") or {}).get("block_size")
        if bs:
            sizes.setdefault(bs, []).append(float(scores[name]))
    if len(sizes) > 1:
        means = {bs: float(np.nanmean(v)) for bs, v in sizes.items()}
        a, b = sorted(means, key=lambda k: -means[k])[:2]
        lines.append(f"- Block size: {a}x{a} blocks average a score of {means[a]:.3f} against "
                     f"{means[b]:.3f} for {b}x{b} over the block tracks.")
    name, v = best("ms_per_slice", lower=True)
    if name is not None:
        lines.append(f"- Fastest inference: **{name}** ({v:.0f} ms per slice).")
    name, v = best("empty_fp_rate", lower=True)
    if name is not None and math.isfinite(v):
        lines.append(f"- Fewest false positives on organ-free slices: **{name}** (a share of {v:.2f}).")
    return "\n".join(lines)


def _table_text(summary: dict) -> str:
    """What the main table's numbers are."""
    stats = summary.get("statistics") or {}
    common = ("Centroid error: distance between predicted and true organ centroids per slice "
              "and class where both exist. FP on empty slices: share of organ-free slices with "
              "any prediction. Inference: probability map of one test slice.")
    if not stats.get("tracks"):
        return ("Mean over folds (± standard deviation where there are several); best per "
                "column in bold. " + common)
    folds = summary.get("n_folds", 1)
    seeds = summary.get("seeds") or {}
    pooled = (f"pooled over the {plural(stats['n_cases'], 'test case')}"
              + (f" of the {folds} folds" if folds > 1 else ""))
    if seeds.get("tracks"):
        first = (f"Dice, Hausdorff and Score are the means over the {len(seeds['seeds'])} "
                 f"training seeds (± sd over seeds) of each seed's values {pooled}, with a "
                 f"{seeds['confidence']:.0%} two-level bootstrap interval in brackets (test "
                 "cases and seeds resampled; see *Seeds*); the per-class Dice columns are the "
                 "main seed's, pooled the same way")
    else:
        first = (f"Dice (per class and overall), Hausdorff and Score are {pooled}, with a "
                 f"{stats['confidence']:.0%} case-level bootstrap interval in brackets (the "
                 f"test cases resampled with replacement, {stats['n_resamples']:,} times, "
                 f"seed {stats['seed']})")
    return (
        first + ". The other columns are means over folds"
        + (" (± standard deviation); *Score by fold* is the mean ± sd of the fold scores, a "
           "different quantity from the pooled score" if folds > 1 else "")
        + ". Best point estimate per column in bold; whether it is distinguishable from the "
        "others is in the paired comparisons below. " + common
        + (" Converged: whether the validation curve levelled off (rule in the training "
           "section; n/a: no learning curve in `training.csv`; –: not a deep track)."
           if any(t.get("kind") != "blocks" for t in summary["tracks"].values()) else ""))
