"""Every section of an experiment config checked, then the frozen dataclasses built.

:func:`build_experiment` raises :class:`~gitract.utils.schema.KeyProblem` for the first
problem (a key path and words); nothing here reads data or writes files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gitract.config._experiment import (
    DataConfig,
    ExperimentConfig,
    LearningCurveConfig,
    ReportConfig,
    SplitConfig,
    TrackConfig,
)
from gitract.config._schema import (
    KeyProblem,
    at_least,
    between,
    check_dataclass,
    check_keys,
    check_value,
    join,
    one_of,
    problem_of,
    show,
)
from gitract.data.loaders import DATASET_KINDS
from gitract.data.phantom import PhantomConfig
from gitract.metrics import CONVENTIONS, MetricConventions
from gitract.tracks import parse_track, track_kinds
from gitract.utils.parallel import BACKENDS, ParallelConfig, address_problem

__all__ = ["build_experiment"]

#: Dataset kinds whose ``data.path`` must be given (the others have a default place).
_NEEDS_PATH = ("kaggle", "pairs", "nifti")
#: ``data.options`` of the lazily indexed kinds (:func:`gitract.data.index.index_dataset`).
_KAGGLE_OPTIONS: dict[str, Any] = {"classes": tuple[str, ...], "order": str,
                                   "images_subdir": str, "csv_path": str | None}


def _name(value: str) -> str | None:
    # Names become folder names (reports/<name>, steps/fold0/<track>).
    if not value.strip() or any(c in value for c in "/\\") or value.startswith("."):
        return f"must be a non-empty folder name (no '/', not starting with '.'), got {value!r}"
    return None


def _seed(value: int) -> str | None:
    return None if 0 <= value < 2**32 else f"must be in [0, 2**32), got {value!r}"


def _seeds(values: tuple[int, ...]) -> str | None:
    bad = [v for v in values if _seed(v)]
    if bad:
        return f"seeds must be in [0, 2**32), got {bad[0]!r}"
    if len(set(values)) != len(values):
        return f"a seed is repeated in {list(values)}"
    return None


def build_experiment(raw: Any) -> ExperimentConfig:
    """Check ``raw`` (parsed YAML) entirely and build the :class:`ExperimentConfig`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise KeyProblem("", f"expected a mapping of settings at the top level, got {show(raw)}")
    sections = ("data", "split", "report", "parallel", "tracks", "metrics", "learning_curve")
    for key in sections:
        # learning_curve: null is what a run's config.json holds without a curve.
        if key in raw and raw[key] is None and key != "learning_curve":  # "data:" with nothing under it, or "data: null"
            default = " (the embedded phantom)" if key == "data" else ""
            raise KeyProblem(key, f"is null (an empty section?): give its settings, or leave "
                                  f"the key out for the defaults{default}")
    top = {k: v for k, v in raw.items() if k not in sections}
    checked = check_dataclass(ExperimentConfig, top, "", rules={
        "name": _name, "seed": _seed, "min_sizes": at_least(0), "seeds": _seeds})
    seeds, seed = checked.get("seeds", ()), checked.get("seed", 0)
    if seeds and seed not in seeds:
        raise KeyProblem("seeds", f"must include seed ({seed}), the seed of the split and of "
                                  f"the main run, got {list(seeds)}")
    return ExperimentConfig(
        **checked,
        data=_data(raw.get("data")),
        split=_split(raw.get("split")),
        report=_build(ReportConfig, check_dataclass(ReportConfig, raw.get("report"), "report",
                                                    rules={"n_example_slices": at_least(0),
                                                           "calibration_bins": at_least(2)}),
                      "report"),
        parallel=_parallel(raw.get("parallel")),
        metrics=_metrics(raw.get("metrics")),
        tracks=_tracks(raw.get("tracks")),
        learning_curve=_learning_curve(raw.get("learning_curve")),
    )


def _learning_curve(values: Any) -> LearningCurveConfig | None:
    if values is None:
        return None
    checked = check_dataclass(LearningCurveConfig, values, "learning_curve",
                              rules={"train_cases": at_least(1)})
    return _build(LearningCurveConfig, checked, "learning_curve")


def _build(cls, values: dict, path: str):
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise problem_of(exc, [f.name for f in dataclasses.fields(cls)], path) from None


def _data(values: Any) -> DataConfig:
    checked = check_dataclass(DataConfig, values, "data", rules={
        "kind": one_of(DATASET_KINDS), "max_cases": at_least(1), "slice_step": at_least(1)})
    kind = checked.get("kind", DataConfig.kind)
    if kind in _NEEDS_PATH and checked.get("path") is None:
        raise KeyProblem("data.path", f"a dataset of kind {kind!r} needs its folder here")
    if checked.get("phantom"):
        phantom = check_dataclass(PhantomConfig, checked["phantom"], "data.phantom")
        _build(PhantomConfig, phantom, "data.phantom")
    if kind in ("kaggle", "phantom") and checked.get("options"):
        check_dataclass_like(checked["options"], _KAGGLE_OPTIONS, "data.options")
        order = checked["options"].get("order")
        if order is not None and order not in ("C", "F"):
            raise KeyProblem("data.options.order", f"must be C or F, got {show(order)}")
    return _build(DataConfig, checked, "data")


def check_dataclass_like(values: Mapping, hints: Mapping[str, Any], path: str) -> None:
    """Known keys and types of a plain mapping (no dataclass behind it)."""
    check_keys(values, hints, path)
    for key, value in values.items():
        check_value(value, hints[key], join(path, key))


def _split(values: Any) -> SplitConfig:
    checked = check_dataclass(SplitConfig, values, "split", rules={
        "n_folds": at_least(1), "n_test": at_least(0),
        "test_fraction": between(0.0, 1.0, open_high=True),
        "val_fraction": between(0.0, 1.0, open_low=True, open_high=True),
        "n_val": at_least(0)})
    n_folds = checked.get("n_folds", SplitConfig.n_folds)
    if checked.get("cross_validate") and n_folds < 2:
        raise KeyProblem("split.n_folds", f"cross_validate needs n_folds >= 2, got {n_folds}")
    if not checked.get("cross_validate") and n_folds > 1:
        # A held-out split runs one train/val split: more folds would be made and dropped.
        raise KeyProblem("split.n_folds", f"{n_folds} folds without cross_validate: true would "
                         "run only the first; set cross_validate: true (every case tested "
                         "once) or n_folds: 1")
    return _build(SplitConfig, checked, "split")


def _parallel(values: Any):
    checked = check_dataclass(ParallelConfig, values, "parallel", rules={
        "backend": one_of(BACKENDS), "n_jobs": at_least(1), "scheduler": address_problem})
    return _build(ParallelConfig, checked, "parallel")


def _metrics(values: Any) -> dict:
    if values is None:
        return {}

    checked = check_dataclass(MetricConventions, values, "metrics",
                              rules={"preset": one_of(CONVENTIONS)}, extra={"preset": str})
    try:  # a named preset, then the fields overriding it
        MetricConventions.from_mapping(checked)
    except (TypeError, ValueError) as exc:
        raise problem_of(exc, [f.name for f in dataclasses.fields(MetricConventions)],
                         "metrics") from None
    return dict(values)


def _tracks(values: Any) -> tuple[TrackConfig, ...]:
    if values is None:
        return ()
    if not isinstance(values, (list, tuple)):
        raise KeyProblem("tracks", f"expected a list of tracks, got {show(values)}")
    tracks, seen = [], {}
    for i, value in enumerate(values):
        path = join("tracks", i)
        if not isinstance(value, Mapping):
            raise KeyProblem(path, f"expected a mapping (name, kind, params), got {show(value)}")
        check_keys(value, ("name", "kind", "params"), path)
        for key in ("name", "kind"):
            if key not in value:
                raise KeyProblem(join(path, key), "missing")
        name = check_value(value["name"], str, join(path, "name"))
        if _name(name):
            raise KeyProblem(join(path, "name"), _name(name))
        if name in seen:
            raise KeyProblem(join(path, "name"), f"duplicate track name {name!r} "
                                                 f"(also tracks[{seen[name]}])")
        seen[name] = i
        kind = check_value(value["kind"], str, join(path, "kind"))
        problem = one_of(track_kinds())(kind)
        if problem:
            raise KeyProblem(join(path, "kind"), problem)
        # The one parse of a track's parameters (the kind's settings and the sweep's).
        settings, tuning, params = parse_track(kind, value.get("params") or {},
                                               join(path, "params"))
        tracks.append(TrackConfig(name=name, kind=kind, params=params, settings=settings,
                                  tuning=tuning))
    return tuple(tracks)
