"""Case-grouped evaluation: train, tune on validation cases, score test cases."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from gitract.data.record import SliceStack
from gitract.data.splits import case_folds, fixed_case_split  # noqa: F401 (re-exported)
from gitract.evaluation._config import BlockTrackConfig
from gitract.evaluation._track import train_block_track
from gitract.metrics import MetricConventions, ScoreResult, score_stacks
from gitract.postprocessing import ThresholdTuning, tune_thresholds


def resolve_split(split: Mapping | Sequence, *, fold: int = 0) -> tuple[list[str], list[str], list[str]]:
    """``(train, val, test)`` case lists from a splits dict or a 3-tuple of lists.

    A dict is ``gitract.data.splits.make_case_splits`` output: its ``test`` cases and
    fold ``fold``'s ``train`` / ``val`` cases.

    Raises
    ------
    ValueError
        A malformed split or a case on two sides.
    """
    if isinstance(split, Mapping):
        if "folds" not in split or "test" not in split:
            raise ValueError(f"split dict needs 'test' and 'folds', got keys {sorted(split)}")
        f = split["folds"][fold]
        train, val, test = list(f["train"]), list(f["val"]), list(split["test"])
    else:
        if len(split) != 3:
            raise ValueError(f"split must be (train, val, test) case lists, got {len(split)} items")
        train, val, test = (list(x) for x in split)
    for a, b, name in ((train, val, "train/val"), (train, test, "train/test"), (val, test, "val/test")):
        both = set(a) & set(b)
        if both:
            raise ValueError(f"split has cases on both sides of {name}: {sorted(both)}")
    if not train or not test:
        raise ValueError("split needs at least one training and one test case")
    return train, val, test


@dataclass
class TrackResult:
    """Outcome of :func:`evaluate_block_track` on one split.

    Attributes
    ----------
    config : BlockTrackConfig
    train_cases, val_cases, test_cases : list of str
    score : ScoreResult
        Test-case metrics (``.per_class``, ``.per_slice``, ``.per_case``).
    tuning : ThresholdTuning
        Chosen on the validation cases (fixed 0.5 when there are none).
    fit_seconds, featurize_seconds : float
    ms_per_slice : float
        Time to make one test slice's probability map.
    n_train_blocks, model_bytes : int
    proba : dict
        Test probability maps ``{key: (S, H, W, C) float32}`` (for plots), or empty.
    """

    config: BlockTrackConfig
    train_cases: list[str]
    val_cases: list[str]
    test_cases: list[str]
    score: ScoreResult
    tuning: ThresholdTuning
    fit_seconds: float
    featurize_seconds: float
    ms_per_slice: float
    n_train_blocks: int
    model_bytes: int
    proba: dict[str, NDArray[np.float32]] = field(default_factory=dict, repr=False)

    def table(self) -> pd.DataFrame:
        """Per-class rows and an ``overall`` row: dice, hausdorff, score, threshold, min_size."""
        rows = []
        for k, (name, stats) in enumerate(self.score.per_class.items()):
            rows.append({"class": name, "dice": stats["dice"], "hausdorff": stats["hausdorff"],
                         "score": stats["score"], "threshold": self.tuning.thresholds[k],
                         "min_size": self.tuning.min_sizes[k]})
        rows.append({"class": "overall", "dice": self.score.dice,
                     "hausdorff": self.score.hausdorff, "score": self.score.score,
                     "threshold": math.nan, "min_size": math.nan})
        return pd.DataFrame(rows)

    def summary(self) -> dict:
        """JSON-able summary (no maps)."""
        return {
            "config": self.config.to_dict(),
            "train_cases": self.train_cases, "val_cases": self.val_cases,
            "test_cases": self.test_cases,
            "metrics": self.score.to_dict(),
            "tuning": self.tuning.to_dict(),
            "fit_seconds": self.fit_seconds, "featurize_seconds": self.featurize_seconds,
            "ms_per_slice": self.ms_per_slice, "n_train_blocks": self.n_train_blocks,
            "model_bytes": self.model_bytes,
        }


def evaluate_block_track(
    stacks: Sequence[SliceStack],
    split: Mapping | Sequence,
    config: BlockTrackConfig = BlockTrackConfig(),
    *,
    fold: int = 0,
    conventions: MetricConventions = MetricConventions(),
    cache: dict | None = None,
    keep_proba: bool = True,
) -> TrackResult:
    """Train on the training cases, tune on the validation cases, score the test cases.

    Parameters
    ----------
    stacks : list of SliceStack
        Labelled stacks of all cases.
    split : dict or (train, val, test)
        Case lists (see :func:`resolve_split`). Without validation cases the thresholds
        stay at 0.5 with no component removal.
    config : BlockTrackConfig
    fold : int
        Fold of a splits dict.
    conventions : MetricConventions
        Both-empty handling, for tuning and scoring alike.
    cache : dict, optional
        Per-slice feature cache shared across calls (folds, classifiers).
    keep_proba : bool
        Keep the test probability maps in the result.

    Returns
    -------
    TrackResult
    """
    from gitract.data.splits import split_stacks

    train_cases, val_cases, test_cases = resolve_split(split, fold=fold)
    train = split_stacks(stacks, train_cases)
    val = split_stacks(stacks, val_cases)
    test = split_stacks(stacks, test_cases)
    track = train_block_track(train, config, cache=cache)
    if val:
        val_proba = track.predict_proba(val, cache=cache)
        # Only validation stacks reach the sweep: test cases never set thresholds.
        track.tuning = tune_thresholds(
            val_proba, val, grid=config.threshold_grid, min_sizes=config.min_sizes,
            conventions=conventions, hausdorff_max_side=config.hausdorff_max_side,
        )
    else:
        track.tuning = ThresholdTuning.fixed(track.classes)
    test_proba = track.predict_proba(test, cache=cache)
    masks = {key: track.tuning.apply(p) for key, p in test_proba.items()}
    result = score_stacks(test, masks, conventions=conventions)
    return TrackResult(
        config=config, train_cases=sorted(train_cases), val_cases=sorted(val_cases),
        test_cases=sorted(test_cases), score=result, tuning=track.tuning,
        fit_seconds=track.fit_seconds, featurize_seconds=track.featurize_seconds,
        ms_per_slice=test_proba.ms_per_slice, n_train_blocks=track.n_train_blocks,
        model_bytes=track.model_bytes, proba=dict(test_proba) if keep_proba else {},
    )


def cross_validate_block_track(
    stacks: Sequence[SliceStack],
    folds: Sequence[Mapping | Sequence],
    config: BlockTrackConfig = BlockTrackConfig(),
    *,
    conventions: MetricConventions = MetricConventions(),
    cache: dict | None = None,
    keep_proba: bool = False,
) -> tuple[list[TrackResult], pd.DataFrame]:
    """:func:`evaluate_block_track` on every fold, plus a long per-fold table.

    Returns
    -------
    results : list of TrackResult
    table : DataFrame
        Columns ``fold, class, dice, hausdorff, score, threshold, min_size,
        fit_seconds, ms_per_slice, n_train_blocks, model_bytes, test_cases``.
    """
    cache = {} if cache is None else cache
    results, frames = [], []
    for i, split in enumerate(folds):
        res = evaluate_block_track(stacks, split, config, conventions=conventions,
                                   cache=cache, keep_proba=keep_proba)
        table = res.table()
        table.insert(0, "fold", i)
        table["fit_seconds"] = res.fit_seconds
        table["ms_per_slice"] = res.ms_per_slice
        table["n_train_blocks"] = res.n_train_blocks
        table["model_bytes"] = res.model_bytes
        table["test_cases"] = " ".join(res.test_cases)
        results.append(res)
        frames.append(table)
    return results, pd.concat(frames, ignore_index=True)
