"""Case-level bootstrap intervals of the competition metric, and paired tests of two tracks.

The test cases (patients) are the independent units: the slices and case-days of one
patient are correlated, so resampling slices would give intervals that are too narrow.

A track's Dice is the mean over the (slice, class) rows that count and its Hausdorff the
mean over the (case-day, class) volumes that count (:func:`score_stacks`), so both are
ratios of per-case sums. A resample of the cases only reweights those sums: weights
``(n_resamples, n_cases)`` (how often each case is drawn) times the per-case sums give every
resample at once, and weights of all ones give the point estimate.
``scipy.stats.bootstrap`` is not used because it refuses a single case and resamples each
array separately; the weights keep the paired resamples of two tracks identical by
construction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from gitract.metrics._conventions import DICE_WEIGHT, HAUSDORFF_WEIGHT
from gitract.utils import check_random_state

#: The metrics a resample gives, in this order.
METRICS = ("dice", "hausdorff", "score")

#: Fewest paired cases for a comparison: with n non-zero differences the smallest two-sided
#: Wilcoxon p is 2 / 2**n (0.0625 for n = 5), and a bootstrap of 5 cases has only 126
#: distinct resamples.
MIN_PAIRED_CASES = 6


@dataclass(frozen=True)
class CaseTotals:
    """Per-case sums and counts of the metric rows that count towards a track's means.

    Attributes
    ----------
    cases : tuple of str
        Case (patient) ids, the resampling units.
    dice_sum, dice_count : ndarray of shape (n_cases,), dtype float64
        Sum and number of the non-NaN (slice, class) Dice rows of each case.
    hausdorff_sum, hausdorff_count : ndarray of shape (n_cases,), dtype float64
        Sum and number of the non-NaN (case-day, class) Hausdorff rows of each case.
    """

    cases: tuple[str, ...]
    dice_sum: NDArray[np.float64]
    dice_count: NDArray[np.float64]
    hausdorff_sum: NDArray[np.float64]
    hausdorff_count: NDArray[np.float64]

    @property
    def n_cases(self) -> int:
        """Number of cases."""
        return len(self.cases)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float

    def excludes(self, value: float = 0.0) -> bool:
        """True when ``value`` lies outside ``[low, high]`` (False for a NaN interval)."""
        return bool(value < self.low or value > self.high)

    def to_dict(self) -> dict[str, float]:
        """``{"estimate", "low", "high"}``."""
        return asdict(self)


@dataclass(frozen=True)
class WilcoxonResult:
    """Wilcoxon signed-rank test on paired per-case values; ``reason`` says why there is no
    p-value (``pvalue`` NaN) when the test was not run."""

    pvalue: float
    statistic: float
    n: int
    reason: str | None = None

    def to_dict(self) -> dict:
        """``{"pvalue", "statistic", "n", "reason"}``."""
        return asdict(self)


def _grouped(rows: pd.DataFrame, metric: str, keys: list[str]) -> pd.DataFrame:
    """Sum and count of the non-NaN ``metric`` rows per ``keys`` (NaN rows do not count)."""
    part = rows.loc[rows["metric"] == metric, [*keys, "value"]]
    part = part.assign(case=part["case"].astype(str))
    return part.groupby(keys, sort=False)["value"].agg(["sum", "count"])


def _arrays(grouped: pd.DataFrame, group: tuple, n_by: int, cases: list[str]):
    if n_by:
        try:
            grouped = grouped.xs(group, level=list(range(n_by)))
        except KeyError:
            grouped = grouped.iloc[:0].droplevel(list(range(n_by)))
    grouped = grouped.reindex(cases, fill_value=0)
    return (grouped["sum"].to_numpy(dtype=np.float64),
            grouped["count"].to_numpy(dtype=np.float64))


def case_totals_by(
    per_slice: pd.DataFrame,
    per_case: pd.DataFrame,
    *,
    by: Sequence[str] = (),
    cases: Sequence[str] | None = None,
) -> dict[tuple, CaseTotals]:
    """:func:`case_totals` of every group of rows sharing the values of the columns ``by``
    (e.g. ``("model", "class")``), in one pass over the tables, all on the same cases so
    that any two groups pair.

    Returns
    -------
    dict of tuple to CaseTotals
        Keyed by the ``by`` values of each group found in either table (``()`` when ``by``
        is empty).

    Raises
    ------
    ValueError
        The tables hold a case that ``cases`` does not list.
    """
    by = list(by)
    found = {str(c) for c in per_slice["case"].unique()} | {
        str(c) for c in per_case["case"].unique()}
    if cases is None:
        cases = sorted(found)
    else:
        cases = [str(c) for c in cases]
        extra = found - set(cases)
        if extra:
            raise ValueError(f"cases does not list the cases {sorted(extra)} of the tables")
    keys = [*by, "case"]
    dice, hd = _grouped(per_slice, "dice", keys), _grouped(per_case, "hausdorff", keys)
    if by:
        groups = dict.fromkeys(
            [*dice.index.droplevel(-1).unique(), *hd.index.droplevel(-1).unique()])
        groups = [g if isinstance(g, tuple) else (g,) for g in groups]
    else:
        groups = [()]
    out = {}
    for group in groups:
        dice_sum, dice_count = _arrays(dice, group, len(by), cases)
        hd_sum, hd_count = _arrays(hd, group, len(by), cases)
        out[group] = CaseTotals(tuple(cases), dice_sum, dice_count, hd_sum, hd_count)
    return out


def case_totals(
    per_slice: pd.DataFrame,
    per_case: pd.DataFrame,
    *,
    cases: Sequence[str] | None = None,
) -> CaseTotals:
    """Per-case sums of one track's Dice rows and Hausdorff volumes.

    Parameters
    ----------
    per_slice : DataFrame
        Long format with columns ``case, metric, value``; the ``metric == "dice"`` rows
        are the (slice, class) Dice values (NaN: left out of the mean).
    per_case : DataFrame
        Long format with columns ``case, metric, value``; the ``metric == "hausdorff"``
        rows are the (case-day, class) Hausdorff values.
    cases : sequence of str, optional
        The cases, in order (cases without rows get zero sums); default: every case of
        either table, sorted. Give the same list for two tracks that are to be paired.

    Returns
    -------
    CaseTotals

    Raises
    ------
    ValueError
        The tables hold a case that ``cases`` does not list.

    Examples
    --------
    >>> rows = pd.DataFrame({"case": ["a", "a", "b"], "metric": "dice",
    ...                      "value": [1.0, float("nan"), 0.5]})
    >>> vols = pd.DataFrame({"case": ["a", "b"], "metric": "hausdorff", "value": [0.0, 0.5]})
    >>> t = case_totals(rows, vols)
    >>> t.cases, t.dice_sum.tolist(), t.dice_count.tolist()
    (('a', 'b'), [1.0, 0.5], [1.0, 1.0])
    """
    return case_totals_by(per_slice, per_case, cases=cases)[()]


def weighted_metrics(totals: CaseTotals, weights: ArrayLike) -> dict[str, NDArray[np.float64]]:
    """Dice, Hausdorff and score of the cases drawn with the given multiplicities.

    Parameters
    ----------
    totals : CaseTotals
    weights : array_like of shape (..., n_cases)
        How often each case is drawn; all ones give the track's own means.

    Returns
    -------
    dict of str to ndarray of shape (...), dtype float64
        ``{"dice", "hausdorff", "score"}``; NaN where the drawn cases hold no row that
        counts.

    Examples
    --------
    >>> t = CaseTotals(("a", "b"), np.array([2.0, 0.0]), np.array([2.0, 2.0]),
    ...                np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    >>> {k: float(v) for k, v in weighted_metrics(t, [1, 1]).items()}
    {'dice': 0.5, 'hausdorff': 0.5, 'score': 0.5}
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape[-1:] != (totals.n_cases,):
        raise ValueError(f"weights must end in an axis of {totals.n_cases} cases, "
                         f"got shape {w.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = (w @ totals.dice_sum) / (w @ totals.dice_count)
        hd = (w @ totals.hausdorff_sum) / (w @ totals.hausdorff_count)
    return {"dice": dice, "hausdorff": hd,
            "score": DICE_WEIGHT * dice + HAUSDORFF_WEIGHT * (1.0 - hd)}


def case_values(totals: CaseTotals) -> dict[str, NDArray[np.float64]]:
    """Each case's own Dice, Hausdorff and score, arrays of shape (n_cases,)."""
    return weighted_metrics(totals, np.eye(totals.n_cases))


def bootstrap_weights(
    n_cases: int, *, n_resamples: int = 2000, random_state: int | np.random.Generator | None = None
) -> NDArray[np.int64]:
    """How often each case is drawn in each resample of ``n_cases`` cases with replacement.

    Returns
    -------
    ndarray of shape (n_resamples, n_cases), dtype int64
        Each row sums to ``n_cases``.

    Examples
    --------
    >>> w = bootstrap_weights(3, n_resamples=4, random_state=0)
    >>> w.shape, w.sum(axis=1).tolist()
    ((4, 3), [3, 3, 3, 3])
    """
    if not isinstance(n_cases, (int, np.integer)) or n_cases < 1:
        raise ValueError(f"n_cases must be a positive int, got {n_cases!r}")
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive int, got {n_resamples!r}")
    rng = check_random_state(random_state)
    return rng.multinomial(n_cases, np.full(n_cases, 1.0 / n_cases), size=n_resamples)


def _interval(estimate: float, resampled: NDArray, confidence: float) -> Interval:
    finite = resampled[np.isfinite(resampled)]
    if not math.isfinite(estimate) or finite.size == 0:
        return Interval(float(estimate), math.nan, math.nan)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return Interval(float(estimate), float(low), float(high))


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")


def bootstrap_interval(
    totals: CaseTotals,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = None,
) -> dict[str, Interval]:
    """Point estimate and case-level bootstrap percentile interval of a track's metrics.

    Parameters
    ----------
    totals : CaseTotals
    n_resamples : int
    confidence : float
        Coverage of the interval (0.95: the 2.5th and 97.5th percentiles).
    random_state : int, Generator or None

    Returns
    -------
    dict of str to Interval
        ``{"dice", "hausdorff", "score"}``; the estimate is the track's mean over every
        case, the interval NaN when no resample holds a row that counts.

    Examples
    --------
    >>> t = CaseTotals(("a", "b"), np.array([1.0, 1.0]), np.array([1.0, 1.0]),
    ...                np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    >>> bootstrap_interval(t, n_resamples=10, random_state=0)["score"]
    Interval(estimate=1.0, low=1.0, high=1.0)
    """
    _check_confidence(confidence)
    point = weighted_metrics(totals, np.ones(totals.n_cases))
    resampled = weighted_metrics(
        totals, bootstrap_weights(totals.n_cases, n_resamples=n_resamples,
                                  random_state=random_state))
    return {m: _interval(float(point[m]), resampled[m], confidence) for m in METRICS}


def seed_bootstrap_interval(
    totals_by_seed: Sequence[CaseTotals],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = None,
) -> dict[str, Interval]:
    """Point estimate and two-level bootstrap interval of a track trained under several
    seeds on the same test cases: the mean over seeds, with both the test cases and the
    training seeds resampled.

    Each resample draws the test cases with replacement (the same draw for every seed,
    as the seeds share their cases) and, independently, ``n_seeds`` seeds with
    replacement; its value is the mean over the drawn seeds of the metric pooled over the
    drawn cases. The interval therefore holds both which patients were tested and the
    training (seed) variance; with one seed it is :func:`bootstrap_interval`'s.

    Examples
    --------
    >>> a = CaseTotals(("x", "y"), np.array([1.0, 1.0]), np.array([1.0, 1.0]),
    ...                np.zeros(2), np.ones(2))
    >>> b = CaseTotals(("x", "y"), np.array([0.5, 0.5]), np.array([1.0, 1.0]),
    ...                np.zeros(2), np.ones(2))
    >>> iv = seed_bootstrap_interval([a, b], n_resamples=200, random_state=0)["dice"]
    >>> iv.estimate, iv.low, iv.high
    (0.75, 0.5, 1.0)
    """
    _check_confidence(confidence)
    if not totals_by_seed:
        raise ValueError("seed_bootstrap_interval needs the totals of at least one seed")
    cases = totals_by_seed[0].cases
    if any(t.cases != cases for t in totals_by_seed):
        raise ValueError("every seed must be scored on the same test cases, in one order")
    rng = check_random_state(random_state)
    n_seeds = len(totals_by_seed)
    point = [weighted_metrics(t, np.ones(t.n_cases)) for t in totals_by_seed]
    weights = bootstrap_weights(len(cases), n_resamples=n_resamples, random_state=rng)
    per_seed = [weighted_metrics(t, weights) for t in totals_by_seed]  # (n_resamples,) each
    drawn = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    out = {}
    for m in METRICS:
        values = np.stack([p[m] for p in per_seed])  # (n_seeds, n_resamples)
        with np.errstate(invalid="ignore"):
            resampled = values[drawn, np.arange(n_resamples)[:, None]].mean(axis=1)
        estimate = float(np.mean([float(p[m]) for p in point]))
        out[m] = _interval(estimate, resampled, confidence)
    return out


def paired_bootstrap(
    first: CaseTotals,
    second: CaseTotals,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = None,
) -> dict[str, Interval]:
    """Difference ``first - second`` of two tracks scored on the same cases, with a paired
    case-level bootstrap interval (both tracks see the same resampled cases).

    Returns
    -------
    dict of str to Interval
        ``{"dice", "hausdorff", "score"}``: the difference of the means over every case and
        its percentile interval.

    Raises
    ------
    ValueError
        The two tracks were not scored on the same cases (in the same order).
    """
    if first.cases != second.cases:
        raise ValueError("first and second must hold the same cases in the same order, got "
                         f"{list(first.cases)} and {list(second.cases)}")
    _check_confidence(confidence)
    ones = np.ones(first.n_cases)
    a, b = weighted_metrics(first, ones), weighted_metrics(second, ones)
    w = bootstrap_weights(first.n_cases, n_resamples=n_resamples, random_state=random_state)
    ra, rb = weighted_metrics(first, w), weighted_metrics(second, w)
    return {m: _interval(float(a[m] - b[m]), ra[m] - rb[m], confidence) for m in METRICS}


def paired_wilcoxon(
    first: ArrayLike, second: ArrayLike, *, min_cases: int = MIN_PAIRED_CASES
) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test on paired per-case values.

    Pairs with a NaN are left out, and so are zero differences (``zero_method="wilcox"``).
    With no difference left, or fewer than ``min_cases`` of them (too few for the test to
    reach p < 0.05), the test is not run and ``reason`` says why.

    Examples
    --------
    >>> paired_wilcoxon([0.5, 0.6], [0.5, 0.6]).reason
    'every case scores the same in both tracks'
    """
    from scipy.stats import wilcoxon

    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"first and second must be 1-d of one length, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    diff = diff[diff != 0]
    n = int(diff.size)
    if n == 0:
        reason = ("no case has a value in both tracks" if not keep.any()
                  else "every case scores the same in both tracks")
        return WilcoxonResult(math.nan, math.nan, 0, reason)
    if n < min_cases:
        return WilcoxonResult(math.nan, math.nan, n,
                              f"only {n} {'case differs' if n == 1 else 'cases differ'}; "
                              f"the test needs {min_cases} to reach p < 0.05")
    res = wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
    return WilcoxonResult(float(res.pvalue), float(res.statistic), n)


def holm_adjust(pvalues: ArrayLike) -> NDArray[np.float64]:
    """Holm's step-down adjustment of a family of p-values (family-wise error control).

    The i-th smallest of the ``m`` finite p-values is multiplied by ``m - i`` (i from 0),
    made non-decreasing in that order and capped at 1; NaN (a test not run) stays NaN and
    does not count in ``m``. Reject where the adjusted value is below alpha.

    Examples
    --------
    >>> holm_adjust([0.01, 0.04, 0.03, float("nan")]).round(3).tolist()
    [0.03, 0.06, 0.06, nan]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out
