"""The U-Net track through the evaluation path: fit, tune on validation, score the test.

The model (:class:`gitract.models.unet.UNetSegmenter`) only returns probabilities; the
threshold sweep and the metric live here, as for the block classifiers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from gitract.data.record import SliceStack
from gitract.data.splits import split_stacks
from gitract.evaluation._evaluate import TrackResult, resolve_split
from gitract.metrics import MetricConventions, score_stacks
from gitract.postprocessing import DEFAULT_GRID, ThresholdTuning, tune_thresholds

__all__ = ["evaluate_unet_track"]


def evaluate_unet_track(
    stacks: Sequence[SliceStack],
    train_cases: Sequence[str],
    val_cases: Sequence[str],
    test_cases: Sequence[str],
    config=None,
    *,
    conventions: MetricConventions | None = None,
    threshold_grid: Sequence[float] = DEFAULT_GRID,
    min_sizes: Sequence[int] = (0, 64, 256),
    hausdorff_max_side: int | None = 128,
    keep_proba: bool = True,
    model=None,
) -> TrackResult:
    """Fit on the training cases, tune on the validation cases, score the test cases.

    Mirrors :func:`gitract.evaluation.evaluate_block_track`: validation cases select the
    checkpoint *and* the per-class thresholds; test cases only get scored.

    Parameters
    ----------
    stacks : list of SliceStack
        Labelled stacks of all cases.
    train_cases, val_cases, test_cases : sequence of str
        Disjoint case lists (``val_cases`` may be empty: last epoch, thresholds 0.5).
    config : UNetConfig, optional
    conventions : MetricConventions, optional
        Both-empty handling for tuning and scoring (default ``MetricConventions()``).
    threshold_grid, min_sizes, hausdorff_max_side
        Candidates of the validation sweep (:func:`gitract.postprocessing.tune_thresholds`);
        ``min_sizes`` in pixels of the original slice grid.
    keep_proba : bool
        Keep the test probability maps in the result.
    model : UNetSegmenter, optional
        An already fitted model (its config is used; ``train_cases`` only recorded).

    Returns
    -------
    TrackResult
        ``config`` is the :class:`UNetConfig`; ``fit_seconds`` the training time (data
        preparation included); ``featurize_seconds`` NaN; ``n_train_blocks`` the number
        of training *slices*; ``ms_per_slice`` the test prediction time per slice;
        ``model_bytes`` the serialised weights.
    """
    from gitract.models.unet import UNetSegmenter

    conventions = MetricConventions() if conventions is None else conventions
    train_cases, val_cases, test_cases = resolve_split(
        (list(train_cases), list(val_cases), list(test_cases)))
    train = split_stacks(stacks, train_cases)
    val = split_stacks(stacks, val_cases)
    test = split_stacks(stacks, test_cases)
    if model is None:
        model = UNetSegmenter(config).fit(train, val or None)
    if val:
        # Only validation stacks reach the sweep: test cases never set thresholds.
        tuning = tune_thresholds(model.predict_stacks(val), val, grid=threshold_grid,
                                 min_sizes=min_sizes, conventions=conventions,
                                 hausdorff_max_side=hausdorff_max_side)
    else:
        tuning = ThresholdTuning.fixed(model.classes_)
    t0 = time.perf_counter()
    test_proba = model.predict_stacks(test)
    seconds = time.perf_counter() - t0
    n_slices = sum(s.n_slices for s in test)
    masks = {key: tuning.apply(p) for key, p in test_proba.items()}
    result = score_stacks(test, masks, conventions=conventions)
    return TrackResult(
        config=model.config, train_cases=sorted(train_cases), val_cases=sorted(val_cases),
        test_cases=sorted(test_cases), score=result, tuning=tuning,
        fit_seconds=float(model.fit_seconds_), featurize_seconds=math.nan,
        ms_per_slice=1000.0 * seconds / max(n_slices, 1),
        n_train_blocks=int(model.n_train_slices_), model_bytes=model.model_bytes(),
        proba=dict(test_proba) if keep_proba else {},
    )
