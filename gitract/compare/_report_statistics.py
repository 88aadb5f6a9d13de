"""The report's statistics in words and tables: intervals next to means, the paired
comparisons against the best track, "not distinguishable" sentences and convergence.

Everything is read from ``summary["statistics"]`` (:func:`gitract.compare._statistics.
run_statistics`); nothing is computed here.
"""

from __future__ import annotations

import math


def plural(n: int, word: str) -> str:
    """``"1 test case"``, ``"2 test cases"``."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _f(v) -> float:
    return math.nan if v is None else float(v)


def interval_text(iv: dict | None, *, digits: int = 3, ci_digits: int = 2) -> str:
    """``"0.417 [0.38, 0.45]"`` from ``{"estimate", "low", "high"}``; ``"n/a"`` without one.

    Examples
    --------
    >>> interval_text({"estimate": 0.4171, "low": 0.38, "high": 0.452})
    '0.417 [0.38, 0.45]'
    """
    if not iv or not math.isfinite(_f(iv.get("estimate"))):
        return "n/a"
    text = f"{_f(iv['estimate']):.{digits}f}"
    lo, hi = _f(iv.get("low")), _f(iv.get("high"))
    if math.isfinite(lo) and math.isfinite(hi):
        text += f" [{lo:.{ci_digits}f}, {hi:.{ci_digits}f}]"
    return text


def _difference(row: dict, metric: str, confidence: float) -> str:
    d = row["difference"][metric]
    return (f"difference {_f(d['estimate']):.3f}, {confidence:.0%} CI {_f(d['low']):.3f} to "
            f"{_f(d['high']):.3f}")


def _names(names: list[str], last: str = "and") -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" {last} " + names[-1]


def comparison_sentence(stats: dict, key: str, label: str) -> str | None:
    """One summary line on the track with the highest ``key`` (``score``, ``dice`` or
    ``dice:<class>``): which tracks it is not distinguishable from (the paired interval of
    the difference includes 0) and which it is above; ``None`` without a comparison."""
    comp = (stats.get("comparisons") or {}).get(key) or {}
    ref = comp.get("reference")
    if ref is None:
        return None
    metric = key.split(":")[0]
    conf = stats.get("confidence", 0.95)
    own = (stats.get("tracks") or {}).get(ref, {}).get(key)  # no interval per class
    est = interval_text(own) if own else f"{_f(comp.get('estimate')):.3f}"
    rows = comp.get("tracks") or {}
    same = [n for n, r in rows.items() if not r["distinguishable"]]
    above = [n for n, r in rows.items() if r["distinguishable"]]
    if not rows:
        return f"- {label}: **{ref}** ({est}); no other track to compare with."
    if not comp.get("enough_cases", True):  # best_lines says why, once
        return f"- {label}: {ref} ({est})."
    if not same:
        return (f"- {label}: **{ref}** ({est}), above every other track (paired {conf:.0%} "
                "intervals of the difference exclude 0).")
    parts = _names([f"{n} ({_difference(rows[n], metric, conf)})" for n in same], "or")
    text = f"- {label}: {ref} ({est}), **not distinguishable** from {parts}"
    if above:
        text += f"; above {_names(above)} (paired {conf:.0%} intervals exclude 0)"
    return text + "."


def best_lines(stats: dict, classes: list[str]) -> list[str]:
    """The "best" lines of the written summary, each with its paired verdicts."""
    n, least = int(stats.get("n_cases") or 0), int(stats.get("min_paired_cases") or 0)
    lines = [f"- With {plural(n, 'test case')}, fewer than {least}, no track is declared "
             "better than another: the highest values below are point estimates (see the "
             "paired comparisons)." if 0 < n < least else None]
    lines += [comparison_sentence(stats, "score", "Highest competition score"),
             comparison_sentence(stats, "dice", "Highest mean Dice")]
    for cls in classes if len(classes) > 1 else []:
        lines.append(comparison_sentence(stats, f"dice:{cls}", f"{cls}: highest Dice"))
    return [line for line in lines if line]


def few_cases_caveat(stats: dict) -> str | None:
    """Why no difference is claimed on a run with too few test cases (None otherwise)."""
    n, least = int(stats.get("n_cases") or 0), int(stats.get("min_paired_cases") or 0)
    if n == 0 or n >= least:
        return None
    return (f"Only {plural(n, 'test case')}, fewer than {least}: a case-level bootstrap of so "
            f"few cases has at most {plural(math.comb(2 * n - 1, n), 'distinct resample')} and "
            "a paired "
            "signed-rank test cannot reach p < 0.05, so the intervals describe these cases "
            "and no track is declared different from the reference.")


def _wilcoxon_cell(test: dict) -> str:
    if test.get("reason"):
        return f"n/a ({test['reason']})"
    return f"{_f(test['pvalue']):.3f} (n={test['n']})"


def paired_section(stats: dict) -> list[str]:
    """``## Paired comparisons``: the best track by score against each other track."""
    comp = (stats.get("comparisons") or {}).get("score") or {}
    ref = comp.get("reference")
    if ref is None or not comp.get("tracks"):
        return []
    conf = stats.get("confidence", 0.95)
    lines = [
        "## Paired comparisons (best track by score against each other track)", "",
        f"Reference: **{ref}**, the highest score pooled over the "
        f"{plural(stats['n_cases'], 'test case')}. Each row gives the difference reference − "
        f"track on the same test cases, with a paired case-level bootstrap {conf:.0%} "
        f"interval ({stats['n_resamples']:,} resamples, seed {stats['seed']}: both tracks see "
        "the same resampled cases), and a "
        "two-sided Wilcoxon signed-rank test on the per-case scores (not corrected for the "
        "number of comparisons). *Not distinguishable*: the interval of the score difference "
        f"includes 0 (or there are fewer than {stats.get('min_paired_cases')} test cases).", "",
        f"| track | Score | Δ Score [{conf:.0%} CI] | Δ Dice [{conf:.0%} CI] | "
        "Wilcoxon p (per-case score) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in comp["tracks"].items():
        score = (stats.get("tracks") or {}).get(name, {}).get("score")
        diff = row["difference"]
        verdict = ("too few cases" if not comp.get("enough_cases", True)
                   else f"{ref} higher" if row["distinguishable"] else "not distinguishable")
        lines.append(
            f"| {name} | {interval_text(score)} | "
            f"{interval_text(diff['score'], ci_digits=3)} | "
            f"{interval_text(diff['dice'], ci_digits=3)} | {_wilcoxon_cell(row['wilcoxon'])} "
            f"| {verdict} |")
    caveat = few_cases_caveat(stats)
    if caveat:
        lines += ["", caveat]
    return [*lines, ""]


def converged_cell(stats: dict, name: str, *, deep: bool = True) -> str:
    """``yes``/``no``/``n/a`` for a deep track (``n/a`` also without a learning curve),
    ``–`` for a track that has no training curve by nature (``deep=False``)."""
    entry = (stats.get("convergence") or {}).get(name)
    return entry["converged"] if entry else ("n/a" if deep else "–")


def convergence_lines(stats: dict) -> list[str]:
    """The convergence rule and, per deep track and fold, the verdict and the gain."""
    conv = stats.get("convergence") or {}
    if not conv:
        return []
    lines = [stats.get("convergence_rule", ""), ""]
    for name, entry in conv.items():
        for f in entry["folds"]:
            gain = _f(f["gain"])
            detail = (f"gain over the last {f['window']} of {f['n_points']} points "
                      f"{gain:+.4f} on {f['curve']}" if math.isfinite(gain)
                      else f"{plural(f['n_points'], 'point')} on "
                      f"{f['curve'] or 'no validation curve'}")
            lines.append(f"- {name}, fold {f['fold']}: converged {f['converged']} ({detail}).")
    return [*lines, ""]
