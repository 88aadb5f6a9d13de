"""Fit a block track from the scan index: capacity search, auto-context stages
(:func:`fit_from_index`).

One stage: the training scans' rows (read one scan at a time), one fit. With
``search_trials`` a seeded search first picks ``model_params`` on the VALIDATION scans'
grids (:mod:`gitract.tracks._capacity`). With ``stages`` 2 or 3 (auto-context,
:mod:`gitract.tracks._autocontext`): the training cases fall into ``crossfit_folds``
groups; per stage, one model per group is fitted on the other groups' rows and makes the
maps its group's cases see in the next stage, and one model on all rows is the stage's
model for validation and test scans. A case's rows at stage k therefore come from maps of
models that never saw that case.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from gitract.tracks._autocontext import crossfit_groups
from gitract.tracks._block_track import BlockTrack, fit_block_track, grid_rows, training_rows
from gitract.tracks._capacity import search_capacity
from gitract.utils.parallel import ParallelConfig, map_scans

__all__ = ["fit_from_index"]


def _rows(item, *, config, n_train_slices):
    source, chain = item
    return training_rows(source.read(), config, n_train_slices=n_train_slices, chain=chain)


def _grid(source, *, config):
    return grid_rows(source.read(), config)


def _search(settings, parts, val_sources, classes, parallel):
    """(settings with the chosen model_params, the trials)."""
    val = map_scans(_grid, val_sources, parallel=parallel, config=settings,
                    desc="validation scans (capacity search)")
    if not val:
        raise ValueError("search_trials needs validation cases; the split has none")
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    Xv = np.concatenate([v[0] for v in val])
    yv = np.concatenate([v[1] for v in val])
    best, trials = search_capacity(
        lambda params: replace(settings, model_params=params).make_model(),
        settings.classifier, settings.model_params, (X, y), (Xv, yv), classes,
        n_trials=settings.search_trials, seed=settings.random_state)
    return replace(settings, model_params=best), trials


def fit_from_index(index, train_keys: Sequence[str], val_keys: Sequence[str], settings: Any,
                   *, parallel: ParallelConfig | None = None) -> tuple[BlockTrack, Any, list]:
    """``(track, settings used, search trials)``; the index's test scans are not read."""
    parallel = parallel or ParallelConfig()
    n_slices = sum(index.ref(k).n_slices for k in train_keys)
    sources = [index.source(k) for k in train_keys]
    kwargs = {"parallel": parallel, "n_train_slices": n_slices}
    parts = map_scans(_rows, [(s, ()) for s in sources], config=settings,
                      desc="training scans (read, sample, featurise)", **kwargs)
    trials: list = []
    if settings.search_trials:
        settings, trials = _search(settings, parts, [index.source(k) for k in val_keys],
                                   index.classes, parallel)
    if settings.stages == 1:
        return fit_block_track(parts, settings, index.classes, train_keys=list(train_keys)), \
            settings, trials
    groups = crossfit_groups([index.ref(k).case for k in train_keys],
                             settings.crossfit_folds, settings.random_state)
    chains: dict[int, tuple] = {g: () for g in set(groups)}
    full: list = []
    fit_seconds = featurize_seconds = 0.0
    for stage in range(1, settings.stages + 1):
        if stage > 1:
            parts = map_scans(_rows, [(s, chains[g]) for s, g in zip(sources, groups, strict=True)],
                              config=settings, desc=f"training scans, stage {stage}", **kwargs)
        if stage < settings.stages:
            for g in chains:
                t0 = time.perf_counter()
                others = [p for p, pg in zip(parts, groups, strict=True) if pg != g]
                chains[g] = (*chains[g], fit_block_track(others, settings, index.classes).model)
                fit_seconds += time.perf_counter() - t0
        track = fit_block_track(parts, settings, index.classes, train_keys=list(train_keys),
                                stage_models=full)
        fit_seconds += track.fit_seconds
        featurize_seconds += track.featurize_seconds
        full.append(track.model)
    track.fit_seconds, track.featurize_seconds = fit_seconds, featurize_seconds
    return track, settings, trials
