"""Block classifiers on feature matrices: random forest and LightGBM in sklearn Pipelines.

Both are plain scikit-learn estimators (``fit`` / ``predict_proba`` / ``get_params``)
over ``X`` from :mod:`gitract.features`, with ``y`` the dominant-class labels 0..3
(see docs/DESIGN.md, "Block classifier contract"). The library estimators are used as
they come, wrapped in a one-step :class:`~sklearn.pipeline.Pipeline` (step ``"clf"``)
so that preprocessing steps can be prepended without changing callers; set their
parameters as ``clf__<name>``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import joblib
from sklearn.pipeline import Pipeline

from gitract.utils.io import atomic_path

__all__ = ["RF_DEFAULTS", "LGBM_DEFAULTS", "load_model", "make_lgbm", "make_rf", "save_model"]

#: Defaults of :func:`make_rf`. Prediction cost grows with trees x depth: 100 trees
#: with leaves of >= 5 samples keep a stride-4 map of a 266x266 slice (4,624 blocks)
#: near the 0.3 s budget on 2 cores; more trees mostly smooth the probabilities.
RF_DEFAULTS: dict[str, Any] = {
    "n_estimators": 100,
    "max_features": "sqrt",
    "min_samples_leaf": 5,
    "max_depth": None,
    "class_weight": "balanced_subsample",
    "n_jobs": -1,
    "random_state": 0,
}

#: Defaults of :func:`make_lgbm`. Multi-class boosting grows one tree per class and
#: round (4 x 150 = 600 trees): measured here, prediction costs ~0.1 ms of CPU per
#: tree per 1,000 blocks, so more rounds would break the 0.3 s per-slice budget.
#: ``subsample`` needs ``subsample_freq`` >= 1 to act. ``n_jobs=-1`` uses OpenMP on
#: every core: on an oversubscribed machine pass ``n_jobs=1`` (OpenMP spin-waits).
LGBM_DEFAULTS: dict[str, Any] = {
    "n_estimators": 150,
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 1.0,
    "class_weight": "balanced",
    "n_jobs": -1,
    "random_state": 0,
    "verbose": -1,
}


def make_rf(**params: Any) -> Pipeline:
    """Random forest block classifier.

    Parameters
    ----------
    **params
        Override :data:`RF_DEFAULTS` (any ``RandomForestClassifier`` parameter).

    Returns
    -------
    Pipeline
        ``Pipeline([("clf", RandomForestClassifier(...))])``.

    Examples
    --------
    >>> make_rf(n_estimators=10).get_params()["clf__n_estimators"]
    10
    """
    from sklearn.ensemble import RandomForestClassifier

    return Pipeline([("clf", RandomForestClassifier(**{**RF_DEFAULTS, **params}))])


def make_lgbm(**params: Any) -> Pipeline:
    """LightGBM block classifier.

    Parameters
    ----------
    **params
        Override :data:`LGBM_DEFAULTS` (any ``LGBMClassifier`` parameter).

    Returns
    -------
    Pipeline
        ``Pipeline([("clf", LGBMClassifier(...))])``.

    Examples
    --------
    >>> make_lgbm(num_leaves=7).get_params()["clf__num_leaves"]
    7
    """
    from lightgbm import LGBMClassifier

    return Pipeline([("clf", LGBMClassifier(**{**LGBM_DEFAULTS, **params}))])


def save_model(model: Any, path: str | os.PathLike, *, compress: int = 3) -> Path:
    """Write a fitted model with joblib, atomically.

    Parameters
    ----------
    model : estimator
    path : path-like
        Destination file (``.joblib`` by convention); parents are created.
    compress : int, default 3
        joblib compression level.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        joblib.dump(model, tmp, compress=compress)
    return path


def load_model(path: str | os.PathLike) -> Any:
    """Read a model written by :func:`save_model`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    return joblib.load(path)
