"""The report's statistics in words and tables: intervals next to means, the paired
comparisons against the reference track (chosen on validation), "not distinguishable"
sentences and convergence.

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


def _reference_text(comp: dict, est: str) -> str:
    ref = comp["reference"]
    if comp.get("reference_rule") == "validation":
        return f"{ref} (highest on validation, {_f(comp.get('validation')):.3f}; test {est})"
    return f"{ref} (highest on test: {est})"


def comparison_sentence(stats: dict, key: str, label: str) -> str | None:
    """One summary line on ``key`` (``score``, ``dice`` or ``dice:<class>``, named
    ``label``): the reference track (highest on validation), which tracks it is not
    distinguishable from on the test cases and which it is above; ``None`` without a
    comparison."""
    comp = (stats.get("comparisons") or {}).get(key) or {}
    ref = comp.get("reference")
    if ref is None:
        return None
    metric = key.split(":")[0]
    conf = stats.get("confidence", 0.95)
    own = (stats.get("tracks") or {}).get(ref, {}).get(key)  # no interval per class
    est = interval_text(own) if own else f"{_f(comp.get('estimate')):.3f}"
    who = _reference_text(comp, est)
    rows = comp.get("tracks") or {}
    same = [n for n, r in rows.items() if not r["distinguishable"]]
    above = [n for n, r in rows.items() if r["distinguishable"] and r.get("reference_higher", True)]
    below = [n for n, r in rows.items() if r["distinguishable"] and not r.get("reference_higher",
                                                                              True)]
    if not rows:
        return f"- {label}: **{who}**; no other track to compare with."
    if not comp.get("enough_cases", True):  # best_lines says why, once
        return f"- {label}: {who}."
    claim = (f"paired {conf:.0%} intervals exclude 0, Holm-adjusted p < {1 - conf:.2f}")
    if not same and not below:
        return f"- {label}: **{who}**, above every other track ({claim})."
    text = f"- {label}: {who}"
    if same:
        parts = _names([f"{n} ({_difference(rows[n], metric, conf)})" for n in same], "or")
        text += f", **not distinguishable** from {parts}"
    if above:
        text += f"; above {_names(above)}"
    if below:
        text += f"; **below** {_names(below)} on test"
    return text + (f" ({claim})." if above or below else ".")


def best_lines(stats: dict, classes: list[str]) -> list[str]:
    """The "best" lines of the written summary, each with its paired verdicts."""
    n, least = int(stats.get("n_cases") or 0), int(stats.get("min_paired_cases") or 0)
    lines = [f"- With {plural(n, 'test case')}, fewer than {least}, no track is declared "
             "better than another: the highest values below are point estimates (see the "
             "paired comparisons)." if 0 < n < least else None]
    lines += [comparison_sentence(stats, "score", "Competition score, reference"),
             comparison_sentence(stats, "dice", "Mean Dice, reference")]
    for cls in classes if len(classes) > 1 else []:
        lines.append(comparison_sentence(stats, f"dice:{cls}", f"{cls} Dice, reference"))
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
    holm = test.get("pvalue_holm")
    return f"{_f(test['pvalue']):.3f}" + (f" → {_f(holm):.3f}" if holm is not None else "") \
        + f" (n={test['n']})"


def _by_fold_text(stats: dict) -> str:
    """The per-fold record of the choice: which track each fold's validation alone picks."""
    by_fold = stats.get("best_on_validation_by_fold") or []
    if len(by_fold) < 2:
        return ""
    picks = ", ".join(f"fold {k} {n or 'n/a'}" for k, n in enumerate(by_fold))
    return f" Highest validation score in each fold: {picks}."


def paired_section(stats: dict) -> list[str]:
    """``## Paired comparisons``: the best track by score against each other track."""
    comp = (stats.get("comparisons") or {}).get("score") or {}
    ref = comp.get("reference")
    if ref is None or not comp.get("tracks"):
        return []
    conf = stats.get("confidence", 0.95)
    if comp.get("reference_rule") == "validation":
        chosen = (f"the track with the highest validation score ({_f(comp.get('validation')):.3f}"
                  ", mean over folds of the validation sweep that chose its thresholds): the "
                  "test cases play no part in choosing it")
    else:
        chosen = (f"the highest score pooled over the {plural(stats['n_cases'], 'test case')} "
                  "(this run folder records no validation score for every track, so the "
                  "reference was chosen on test)")
    lines = [
        "## Paired comparisons (reference track against each other track)", "",
        f"Reference: **{ref}**, {chosen}. Each row gives the difference reference − "
        f"track on the same test cases, with a paired case-level bootstrap {conf:.0%} "
        f"interval ({stats['n_resamples']:,} resamples, seed {stats['seed']}: both tracks see "
        "the same resampled cases), and a "
        "two-sided Wilcoxon signed-rank test on the per-case scores, its p-value followed by "
        f"the Holm-adjusted one (Holm's step-down correction over the {len(comp['tracks'])} "
        "comparisons of this table). *Distinguishable*: the interval of the score difference "
        f"excludes 0 **and** the Holm-adjusted p is below {1 - conf:.2f}, with at least "
        f"{stats.get('min_paired_cases')} test cases; otherwise *not distinguishable*."
        + _by_fold_text(stats), "",
        f"| track | Score | Δ Score [{conf:.0%} CI] | Δ Dice [{conf:.0%} CI] | "
        "Wilcoxon p → Holm (per-case score) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in comp["tracks"].items():
        score = (stats.get("tracks") or {}).get(name, {}).get("score")
        diff = row["difference"]
        verdict = ("too few cases" if not comp.get("enough_cases", True)
                   else "not distinguishable" if not row["distinguishable"]
                   else f"{ref} higher" if row.get("reference_higher", True)
                   else f"{ref} lower")
        lines.append(
            f"| {name} | {interval_text(score)} | "
            f"{interval_text(diff['score'], ci_digits=3)} | "
            f"{interval_text(diff['dice'], ci_digits=3)} | {_wilcoxon_cell(row['wilcoxon'])} "
            f"| {verdict} |")
    caveat = few_cases_caveat(stats)
    if caveat:
        lines += ["", caveat]
    return [*lines, ""]


def empty_readings_section(stats: dict) -> list[str]:
    """``## Rows where both masks are empty: three readings``: each track's Dice and score
    with those rows left out, counted 1 and counted 0."""
    readings = stats.get("empty_readings") or {}
    if not readings:
        return []
    lines = [
        "## Rows where both masks are empty: three readings", "",
        "The official grader is private, and Kaggle's text gives two readings of a (slice, "
        "class) row whose true and predicted masks are both empty: Dice 1, or (in some "
        "copies) 0; the host's own tools leave such rows out. The main table follows the "
        "run's metric conventions (see *Dataset and split*). Below, each track's pooled Dice and score under all three; the Hausdorff term "
        "is the same in each. A track that predicts nothing on organ-free slices gains "
        "from *counted 1*; the ranking is robust only where it holds in all three columns.", "",
        "| track | rows left out | Dice: left out | Dice: counted 1 | Dice: counted 0 | "
        "Score: left out | Score: counted 1 | Score: counted 0 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in readings.items():
        cells = [f"{r['n_left_out']:,} of {r['n_rows']:,}"]
        cells += [f"{_f(r[k]['dice']):.3f}" for k in ("left_out", "one", "zero")]
        cells += [f"{_f(r[k]['score']):.3f}" for k in ("left_out", "one", "zero")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if not any(r["n_left_out"] for r in readings.values()):
        lines += ["", "No row was left out (this run's conventions scored both-empty rows, or "
                      "none occurred), so the three readings coincide."]
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
