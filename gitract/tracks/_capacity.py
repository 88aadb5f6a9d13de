"""Capacity chosen on validation cases: a small seeded random search (:func:`search_capacity`).

Each trial draws the main parameters of the forest or LightGBM from :data:`SPACES`
(trial 0 keeps the track's own ``model_params``), fits on the training rows and scores
the VALIDATION cases' block grid: the mean over organs of the best Dice over thresholds
0.1..0.9 of the blocks' probabilities against the dominant class at the grid centres.
Test cases are never read. The search runs on the stage-1 features; later auto-context
stages reuse the chosen values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gitract.probmaps import organ_proba

__all__ = ["SPACES", "grid_dice", "search_capacity"]

#: name -> (low, high, "int" | "float" | "log-int" | "log-float") per classifier.
SPACES: dict[str, dict[str, tuple[float, float, str]]] = {
    "lightgbm": {
        "n_estimators": (100, 600, "log-int"),
        "learning_rate": (0.02, 0.2, "log-float"),
        "num_leaves": (15, 127, "log-int"),
        "min_child_samples": (5, 80, "log-int"),
        "colsample_bytree": (0.2, 0.9, "float"),
    },
    "rf": {
        "n_estimators": (100, 400, "log-int"),
        "max_features": (0.05, 0.5, "log-float"),
        "min_samples_leaf": (1, 20, "log-int"),
    },
}

_THRESHOLDS = np.linspace(0.1, 0.9, 9)


def _draw(space: Mapping[str, tuple[float, float, str]], rng: np.random.Generator) -> dict:
    out: dict[str, Any] = {}
    for name, (low, high, kind) in space.items():
        x = (float(np.exp(rng.uniform(np.log(low), np.log(high)))) if kind.startswith("log")
             else float(rng.uniform(low, high)))
        out[name] = int(round(x)) if kind.endswith("int") else round(x, 4)
    return out


def grid_dice(proba: NDArray, labels: NDArray, n_classes: int) -> float:
    """Mean over organs 1..n_classes of the best Dice over thresholds of ``proba``
    (n, n_classes) against ``labels`` (n,) (an organ absent everywhere: 1 if never
    predicted at 0.9, else 0 at best)."""
    scores = []
    for c in range(n_classes):
        truth = labels == c + 1
        pred = proba[:, c][None, :] >= _THRESHOLDS[:, None]
        inter = (pred & truth[None, :]).sum(axis=1)
        total = pred.sum(axis=1) + truth.sum()
        dice = np.where(total > 0, 2.0 * inter / np.maximum(total, 1), 1.0)
        scores.append(float(dice.max()))
    return float(np.mean(scores))


def search_capacity(
    make_model: Callable[[Mapping[str, Any]], Any],
    classifier: str,
    base_params: Mapping[str, Any],
    train: tuple[NDArray, NDArray],
    val: tuple[NDArray, NDArray],
    classes: Sequence[str],
    *,
    n_trials: int,
    seed: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Best ``model_params`` over ``n_trials`` trials on the validation rows.

    Parameters
    ----------
    make_model : callable
        ``make_model(model_params)`` -> an unfitted classifier.
    classifier : {"lightgbm", "rf"}
    base_params : mapping
        The track's own ``model_params`` (trial 0; every trial starts from them).
    train : (X, y)
        Training block rows.
    val : (X, y)
        The validation cases' grid rows and the dominant labels at their centres.
    classes : sequence of str
    n_trials : int
    seed : int

    Returns
    -------
    best_params, trials
        ``trials``: one dict per trial (``params``, ``val_dice``, ``seconds``).
    """
    if classifier not in SPACES:
        raise ValueError(f"no capacity search space for classifier {classifier!r} "
                         f"(have {', '.join(SPACES)})")
    rng = np.random.default_rng(seed)
    X, y = train
    Xv, yv = val
    trials = []
    for k in range(int(n_trials)):
        params = dict(base_params) if k == 0 else {**base_params, **_draw(SPACES[classifier], rng)}
        t0 = time.perf_counter()
        model = make_model(params)
        model.fit(X, y)
        proba = organ_proba(np.asarray(model.predict_proba(Xv)), model, classes)
        trials.append({"trial": k, "params": params,
                       "val_dice": grid_dice(proba, yv, len(classes)),
                       "seconds": time.perf_counter() - t0})
    best = max(trials, key=lambda t: (t["val_dice"], -t["trial"]))
    return dict(best["params"]), trials
