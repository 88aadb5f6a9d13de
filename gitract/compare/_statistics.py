"""A run's statistics from its tables alone: case-level bootstrap intervals, paired
comparisons against the reference track, and whether each deep track's training levelled off.

The reference track of each comparison is the one with the highest *validation* value (the
sweep that chose its thresholds, mean over folds), never the highest test value; the
Wilcoxon p-values of one comparison are Holm-adjusted over its tracks.

Everything here reads the run-level tables (``metrics_per_slice.csv``,
``metrics_per_case.csv``, ``training.csv``), so ``gitract report RUN_DIR`` recomputes it
from a committed run folder. Cases are pooled over folds: in cross-validation every case is
tested once, so the pooled cases are the sample (fold means are a different quantity and are
reported apart).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from gitract.metrics import (
    MIN_PAIRED_CASES,
    CaseTotals,
    bootstrap_interval,
    case_totals_by,
    case_values,
    holm_adjust,
    paired_bootstrap,
    paired_wilcoxon,
    weighted_metrics,
)

N_RESAMPLES = 2000
CONFIDENCE = 0.95

#: Share of the curve that must have stopped improving, fewest points in it, and the gain
#: (relative to the best value) that still counts as "no longer improving".
CONVERGENCE_FRACTION = 0.25
CONVERGENCE_MIN_POINTS = 3
CONVERGENCE_TOLERANCE = 0.01

CONVERGENCE_RULE = (
    "Converged: the validation curve (the validation score where the track records it, else "
    "the validation Dice, otherwise minus the validation loss: nnU-Net's and the block CNN's)"
    f" gains at most {CONVERGENCE_TOLERANCE:.0%} of its best value "
    f"over its last quarter (at least {CONVERGENCE_MIN_POINTS} points) compared with its best "
    "value before; *yes* for a track when every fold converged, *no* when one did not, *n/a* "
    f"for a curve of fewer than {CONVERGENCE_MIN_POINTS + 1} points."
)


def convergence(
    values: ArrayLike,
    *,
    fraction: float = CONVERGENCE_FRACTION,
    min_points: int = CONVERGENCE_MIN_POINTS,
    tolerance: float = CONVERGENCE_TOLERANCE,
) -> dict:
    """Whether a validation curve (higher is better) has stopped improving.

    The last ``fraction`` of the points (at least ``min_points``) is the window; the curve
    has converged when the window's best value exceeds the best value before it by at most
    ``tolerance * |best value|``. A falling end (overfitting) counts as converged: more
    training of the same kind would not help.

    Parameters
    ----------
    values : array_like of shape (n,)
        The curve in training order; NaN points are dropped.

    Returns
    -------
    dict
        ``converged`` ("yes", "no" or "n/a"), ``gain`` (window best minus earlier best),
        ``n_points`` and ``window``.

    Examples
    --------
    >>> convergence([0.1, 0.5, 0.6, 0.6, 0.6, 0.6])["converged"]
    'yes'
    >>> convergence([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])["converged"]
    'no'
    >>> convergence([0.1, 0.2, 0.3])["converged"]
    'n/a'
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    window = max(min_points, math.ceil(fraction * v.size))
    out = {"converged": "n/a", "gain": math.nan, "n_points": int(v.size), "window": window}
    if v.size < window + 1:
        return out
    best_before, best_end = float(v[:-window].max()), float(v[-window:].max())
    gain = best_end - best_before
    out["gain"] = gain
    out["converged"] = "yes" if gain <= tolerance * abs(max(best_before, best_end)) else "no"
    return out


def _curve(part: pd.DataFrame) -> tuple[str | None, np.ndarray]:
    part = part.sort_values("epoch") if "epoch" in part else part
    for column, sign in (("val_score", 1.0), ("val_dice", 1.0), ("val_loss", -1.0)):
        if column in part and part[column].notna().any():
            name = column if sign > 0 else f"-{column}"
            return name, sign * part[column].to_numpy(dtype=np.float64)
    return None, np.empty(0)


def track_convergence(training: pd.DataFrame) -> dict[str, dict]:
    """``{track: {"converged", "folds": [...]}}`` for every track with a learning curve in
    ``training.csv`` (columns ``model, fold, epoch`` and ``val_score``, ``val_dice`` and/or
    ``val_loss``: the first present is the curve)."""
    out: dict[str, dict] = {}
    if training.empty or "model" not in training:
        return out
    for name, part in training.groupby("model", sort=False):
        folds = []
        for fold, curve in part.groupby("fold", sort=True):
            column, values = _curve(curve)
            folds.append({"fold": int(fold), "curve": column, **convergence(values)})
        verdicts = {f["converged"] for f in folds}
        verdict = "no" if "no" in verdicts else "yes" if verdicts == {"yes"} else "n/a"
        out[str(name)] = {"converged": verdict, "folds": folds}
    return out


def _empty_totals(cases: tuple[str, ...]) -> CaseTotals:
    zeros = np.zeros(len(cases))
    return CaseTotals(cases, zeros, zeros, zeros, zeros)


def _estimate(totals: CaseTotals, metric: str) -> float:
    return float(weighted_metrics(totals, np.ones(totals.n_cases))[metric])


def best_on_validation_by_fold(summary_tracks: Mapping[str, dict]) -> list[str | None]:
    """Per fold, the track with the highest validation score of that fold (None where no
    track has one): the choice the run would make from that fold alone.

    Examples
    --------
    >>> def t(*scores):
    ...     return {"folds": [{"validation": {"a": {"score": s}}} for s in scores]}
    >>> best_on_validation_by_fold({"x": t(0.5, 0.9), "y": t(0.7, 0.8)})
    ['y', 'x']
    """
    n = max((len(t.get("folds") or []) for t in summary_tracks.values()), default=0)
    best: list[str | None] = []
    for k in range(n):
        scores = {}
        for name, t in summary_tracks.items():
            folds = t.get("folds") or []
            val = (folds[k].get("validation") or {}) if k < len(folds) else {}
            vals = [_number((v or {}).get("score")) for v in val.values()]
            if vals and all(math.isfinite(v) for v in vals):
                scores[name] = float(np.mean(vals))
        best.append(max(scores, key=scores.get) if scores else None)
    return best


def validation_values(summary_tracks: Mapping[str, dict]) -> dict[str, dict[str, float]]:
    """Per track, the validation ``score``, ``dice`` and ``dice:<class>`` that choices are
    made on: per fold the mean over classes of the tuned thresholds' validation values
    (``folds[k]["validation"]``), then the mean over folds; NaN where a fold has none.

    Examples
    --------
    >>> folds = [{"validation": {"a": {"score": 0.6, "dice": 0.4}, "b": {"score": 0.8,
    ...                                                                  "dice": 0.6}}}]
    >>> validation_values({"t": {"folds": folds}})["t"]
    {'score': 0.7, 'dice': 0.5, 'dice:a': 0.4, 'dice:b': 0.6}
    """
    out = {}
    for name, track in summary_tracks.items():
        per_fold: dict[str, list[float]] = {}
        for fold in track.get("folds") or []:
            val = fold.get("validation") or {}
            for metric in ("score", "dice"):
                vals = [_number((v or {}).get(metric)) for v in val.values()]
                per_fold.setdefault(metric, []).append(float(np.mean(vals)) if vals
                                                       else math.nan)
            for cls, v in val.items():
                per_fold.setdefault(f"dice:{cls}", []).append(_number((v or {}).get("dice")))
        out[name] = {k: round(float(np.mean(v)), 6) for k, v in per_fold.items()}
    return out


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _compare(totals: dict[str, CaseTotals], metric: str, *, n_resamples: int,
             confidence: float, seed: int, validation: Mapping[str, float] | None = None
             ) -> dict:
    """The reference track against each other track, paired on the test cases.

    The reference is the track with the highest ``validation`` value where every track has
    one; otherwise (an older run folder, no validation cases) the highest test value, and
    ``reference_rule`` says which. A track is *distinguishable* from the reference when
    there are enough test cases, the bootstrap interval of the difference excludes 0 and
    the Holm-adjusted Wilcoxon p-value is below ``1 - confidence``.
    """
    ones = {name: case_values(t) for name, t in totals.items()}
    means = {name: _estimate(t, metric) for name, t in totals.items()}
    finite = [n for n, v in means.items() if math.isfinite(v)]
    if not finite:
        return {"reference": None, "tracks": {}}
    val = {n: float((validation or {}).get(n, math.nan)) for n in finite}
    if all(math.isfinite(v) for v in val.values()):
        reference = max(finite, key=lambda n: val[n])  # first of equal tracks, in track order
        rule = "validation"
    else:
        reference = max(finite, key=lambda n: means[n])
        rule = "test"
    # Too few cases: the intervals are still reported, but no difference is claimed.
    enough = totals[reference].n_cases >= MIN_PAIRED_CASES
    rows = {}
    for name, t in totals.items():
        if name == reference:
            continue
        diff = paired_bootstrap(totals[reference], t, n_resamples=n_resamples,
                                confidence=confidence, random_state=seed)
        test = paired_wilcoxon(ones[reference][metric], ones[name][metric])
        rows[name] = {"difference": {m: iv.to_dict() for m, iv in diff.items()},
                      "excludes_zero": bool(diff[metric].excludes(0.0)),
                      "reference_higher": bool(diff[metric].estimate > 0),
                      "wilcoxon": test.to_dict()}
    adjusted = holm_adjust([r["wilcoxon"]["pvalue"] for r in rows.values()])
    for row, p in zip(rows.values(), adjusted):
        row["wilcoxon"]["pvalue_holm"] = None if math.isnan(p) else float(p)
        row["distinguishable"] = bool(enough and row["excludes_zero"]
                                      and p < 1.0 - confidence)
    return {"reference": reference, "reference_rule": rule, "estimate": means[reference],
            "validation": val[reference] if rule == "validation" else None,
            "enough_cases": enough, "tracks": rows}


def run_statistics(
    per_slice: pd.DataFrame,
    per_case: pd.DataFrame,
    training: pd.DataFrame | None = None,
    *,
    tracks: Sequence[str],
    seed: int,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    validation: Mapping[str, Mapping[str, float]] | None = None,
) -> dict:
    """Bootstrap intervals, paired comparisons and convergence of a run (JSON-able).

    Parameters
    ----------
    per_slice, per_case : DataFrame
        The run's ``metrics_per_slice.csv`` and ``metrics_per_case.csv`` (every fold).
    training : DataFrame, optional
        The run's ``training.csv`` (learning curves of the deep tracks).
    tracks : sequence of str
        Track names, in the report's order.
    seed : int
        The run's seed: every bootstrap uses it, so the paired resamples are the same cases
        for every pair of tracks.
    validation : mapping, optional
        Per track, its validation values (:func:`validation_values`): each comparison's
        reference is the track highest on them.

    Returns
    -------
    dict
        ``tracks`` (per track: ``dice``, ``hausdorff``, ``score`` as ``{estimate, low,
        high}`` over the pooled test cases, ``per_class`` Dice estimates), ``comparisons``
        (per compared quantity ``score``, ``dice``, ``dice:<class>``: the ``reference``
        track and, per other track, the paired ``difference`` intervals, whether the
        interval excludes 0, a Wilcoxon test on per-case values with its Holm-adjusted
        p-value, and whether the difference is claimed: never with fewer than
        ``MIN_PAIRED_CASES`` test cases), ``convergence`` and the settings.
    """
    out = {"method": "case-level bootstrap: test cases resampled with replacement, pooled "
                     "over folds; percentile intervals",
           "n_resamples": n_resamples, "confidence": confidence, "seed": seed,
           "min_paired_cases": MIN_PAIRED_CASES, "n_cases": 0, "tracks": {}, "comparisons": {},
           "convergence": track_convergence(training if training is not None
                                            else pd.DataFrame()),
           "convergence_rule": CONVERGENCE_RULE}
    if per_slice.empty or per_case.empty:
        return out
    overall = case_totals_by(per_slice, per_case, by=("model",))
    by_class = case_totals_by(per_slice, per_case, by=("model", "class"))
    cases = next(iter(overall.values())).cases  # every group holds every case
    classes = [str(c) for c in per_slice["class"].unique()]
    out["n_cases"] = len(cases)
    present = {str(m) for m in per_slice["model"].unique()}
    names = [t for t in tracks if t in present]
    empty = _empty_totals(cases)
    scopes: dict[str | None, dict[str, CaseTotals]] = {
        None: {n: overall.get((n,), empty) for n in names},
        **{c: {n: by_class.get((n, c), empty) for n in names} for c in classes}}
    for name in names:
        iv = bootstrap_interval(scopes[None][name], n_resamples=n_resamples,
                                confidence=confidence, random_state=seed)
        out["tracks"][name] = {
            **{m: v.to_dict() for m, v in iv.items()},
            "per_class": {c: {"dice": _estimate(scopes[c][name], "dice")} for c in classes},
        }
    out["empty_readings"] = empty_row_readings(per_slice, per_case, names)
    kw = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    val = validation or {}

    def chosen_on(key):
        return {n: v[key] for n, v in val.items() if key in v}

    out["comparisons"]["score"] = _compare(scopes[None], "score", validation=chosen_on("score"),
                                           **kw)
    out["comparisons"]["dice"] = _compare(scopes[None], "dice", validation=chosen_on("dice"),
                                          **kw)
    for cls in classes:
        out["comparisons"][f"dice:{cls}"] = _compare(
            scopes[cls], "dice", validation=chosen_on(f"dice:{cls}"), **kw)
    return out


def empty_row_readings(per_slice: pd.DataFrame, per_case: pd.DataFrame,
                       tracks: Sequence[str]) -> dict[str, dict]:
    """Each track's pooled Dice and score under the three readings of the rows whose true
    and predicted masks are both empty: ``left_out`` of the Dice mean (the run's NaN rows),
    counted ``one`` (Dice 1) and counted ``zero`` (Dice 0); the official grader is private
    and Kaggle's text gives both. The Hausdorff term is the run's in every reading.

    ``n_left_out`` counts the NaN Dice rows: under conventions that leave both-empty rows
    out (the default), exactly those rows; 0 when the run scored them already.
    """
    if per_slice.empty or per_case.empty:
        return {}
    blank = (per_slice["metric"] == "dice") & per_slice["value"].isna()
    out: dict[str, dict] = {}
    for reading, fill in (("left_out", None), ("one", 1.0), ("zero", 0.0)):
        table = per_slice if fill is None else per_slice.assign(
            value=per_slice["value"].mask(blank, fill))
        totals = case_totals_by(table, per_case, by=("model",))
        for name in tracks:
            if (name,) not in totals:
                continue
            est = _estimate_all(totals[(name,)])
            out.setdefault(name, {})[reading] = {"dice": est["dice"], "score": est["score"]}
    for name in out:
        rows = per_slice[(per_slice["model"] == name) & (per_slice["metric"] == "dice")]
        out[name]["n_rows"] = int(len(rows))
        out[name]["n_left_out"] = int(rows["value"].isna().sum())
    return out


def _estimate_all(totals: CaseTotals) -> dict[str, float]:
    return {k: float(v) for k, v in weighted_metrics(totals, np.ones(totals.n_cases)).items()}


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file() or path.stat().st_size <= 1:
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def folder_statistics(out: str | Path, summary_tracks: Mapping[str, dict], *, seed: int,
                      n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE) -> dict:
    """:func:`run_statistics` of a run folder's tables; ``summary_tracks`` (the summary's
    ``tracks``, in the report's order) gives the names and the validation values."""
    out = Path(out)
    return run_statistics(_read(out / "metrics_per_slice.csv"),
                          _read(out / "metrics_per_case.csv"),
                          _read(out / "training.csv"), tracks=list(summary_tracks), seed=seed,
                          n_resamples=n_resamples, confidence=confidence,
                          validation=validation_values(summary_tracks)) | {
        "best_on_validation_by_fold": best_on_validation_by_fold(summary_tracks)}
