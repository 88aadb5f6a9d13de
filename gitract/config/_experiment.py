"""Frozen dataclasses of a comparison run (defaults live here; checks in ``_sections``).

A YAML file overrides only the keys it names; :func:`gitract.config.config_from_dict`
checks every value before it builds these.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gitract.tracks import TuningSettings, parse_track
from gitract.utils.parallel import ParallelConfig


@dataclass(frozen=True)
class DataConfig:
    """Which dataset a run reads.

    ``kind`` is one of the kinds of :func:`gitract.data.loaders.load_dataset`; ``path`` None
    means its default place (the embedded phantom is generated into the cache folder).
    ``phantom`` holds :class:`gitract.data.phantom.PhantomConfig` overrides. ``slice_step``
    keeps every n-th slice of each stack (a lighter run; stated in the report).
    ``cache_scans`` keeps decoded Kaggle-layout scans in the cache folder (as nnU-Net's
    preprocessed folder): the first pass decodes PNGs and RLE, later passes load arrays.
    ``exclude`` drops cases (``case7``) or case-days (``case7_day0``) before the split is
    made, e.g. scans with known faulty masks; the report lists them.
    """

    kind: str = "phantom"
    path: str | None = None
    phantom: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    max_cases: int | None = None
    slice_step: int = 1
    cache_scans: bool = False
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.slice_step, int) or self.slice_step < 1:
            raise ValueError(f"data.slice_step must be a positive int, got {self.slice_step!r}")
        if isinstance(self.exclude, str):
            raise ValueError(f"data.exclude must be a list of ids, got {self.exclude!r}")
        object.__setattr__(self, "exclude", tuple(self.exclude))
        blank = [e for e in self.exclude if not isinstance(e, str) or not e.strip()]
        if blank:
            raise ValueError(f"data.exclude holds case or case-day ids, got {blank[0]!r}")


@dataclass(frozen=True)
class SplitConfig:
    """Case-grouped split: held-out test cases plus K folds (K<=1: one train/val split).

    ``n_val`` (a number of cases) replaces ``val_fraction`` where given; with
    ``cross_validate`` it is the number of training cases per fold that tune the
    thresholds (default 1). ``n_test: 0`` (and ``test_fraction: null``) makes a training
    run: models and validation-tuned thresholds, nothing scored (``gitract ... train``).
    """

    n_folds: int = 1
    n_test: int | None = None
    test_fraction: float | None = 0.34
    val_fraction: float = 0.25
    n_val: int | None = None
    cross_validate: bool = False
    holdout: tuple[str, ...] | float | None = None

    def __post_init__(self) -> None:
        h = self.holdout
        if isinstance(h, (int, float)) and not isinstance(h, bool):
            h = float(h)
            object.__setattr__(self, "holdout", h)
        if isinstance(h, (str, bool)):
            raise ValueError(f"split.holdout: a list of case ids or a fraction, got {h!r}")
        if isinstance(h, float) and not 0.0 < h < 1.0:
            raise ValueError(f"split.holdout: a fraction must be in (0, 1), got {h!r}")
        if isinstance(h, (list, tuple)):
            if not h or any(not isinstance(c, str) or not c.strip() for c in h):
                raise ValueError(f"split.holdout: non-empty case ids, got {list(h)!r}")
            object.__setattr__(self, "holdout", tuple(h))


@dataclass(frozen=True)
class TrackConfig:
    """One track of the comparison: a name, a kind (:func:`gitract.tracks.track_kind`)
    and its parameters.

    ``params`` are kept as written (they are what ``config.json`` shows and what a
    step's key hashes); ``settings`` (the kind's settings object) and ``tuning``
    (:class:`~gitract.tracks.TuningSettings`) are those parameters parsed, once, when
    the config is built (:func:`gitract.config.config_from_dict` passes them; built
    directly, the track parses its ``params`` here).
    """

    name: str
    kind: str
    params: dict = field(default_factory=dict)
    settings: Any = field(default=None, compare=False, repr=False)
    tuning: TuningSettings | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.settings is None or self.tuning is None:
            try:
                settings, tuning, params = parse_track(self.kind, self.params, "params")
            except ValueError as exc:
                raise ValueError(f"track {self.name!r}: {exc}") from None
            object.__setattr__(self, "settings", settings)
            object.__setattr__(self, "tuning", tuning)
            object.__setattr__(self, "params", params)

    def to_dict(self) -> dict[str, Any]:
        """``{name, kind, params}`` (params as written)."""
        return {"name": self.name, "kind": self.kind, "params": copy.deepcopy(self.params)}


@dataclass(frozen=True)
class ReportConfig:
    """What the report shows."""

    n_example_slices: int = 3
    calibration_bins: int = 10


@dataclass(frozen=True)
class LearningCurveConfig:
    """The data-regime curve: every track trained again on nested, seeded subsets of each
    fold's training cases (``train_cases`` cases each; validation and test cases unchanged),
    scored on the same test cases (:mod:`gitract.compare._learning_curve`)."""

    train_cases: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        sizes = tuple(self.train_cases)
        object.__setattr__(self, "train_cases", sizes)
        if not sizes:
            raise ValueError("learning_curve.train_cases: give at least one number of cases")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
            raise ValueError(f"learning_curve.train_cases: positive ints, got {list(sizes)}")
        if list(sizes) != sorted(set(sizes)):
            raise ValueError("learning_curve.train_cases: increasing, without repeats, got "
                             f"{list(sizes)}")


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole comparison run."""

    name: str = "quick"
    seed: int = 0
    deterministic: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    tracks: tuple[TrackConfig, ...] = ()
    metrics: dict = field(default_factory=dict)
    #: Candidate minimum component sizes (pixels) of the one threshold-tuning rule that every
    #: track shares; thresholds sweep 0.05..0.95. Both are chosen per class on validation cases.
    min_sizes: tuple[int, ...] = (0, 64, 256, 1024)
    report: ReportConfig = field(default_factory=ReportConfig)
    #: Where per-scan stages run: ``{backend: joblib|dask, n_jobs: N, scheduler: ADDRESS}``
    #: (:class:`gitract.utils.parallel.ParallelConfig`); never part of a step's key.
    parallel: Any = None
    #: ``{train_cases: [1, 2, 4, ...]}``: the data-regime curve (None: none).
    learning_curve: LearningCurveConfig | None = None
    #: Training seeds of every track on the same split (``seed`` makes the split and is
    #: the main run's; it must be one of them): ``[0, 1, 2]`` trains each track three
    #: times; the main table gives the mean and spread over seeds (empty: ``seed`` only).
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.parallel is None:
            object.__setattr__(self, "parallel", ParallelConfig())
        seeds = tuple(self.seeds)
        object.__setattr__(self, "seeds", seeds)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds: repeated seed in {list(seeds)}")
        if seeds and self.seed not in seeds:
            raise ValueError(f"seeds: must include seed ({self.seed}), the seed of the split "
                             f"and of the main run, got {list(seeds)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (a run's ``config.json``): tracks as written, not expanded."""
        out = dataclasses.asdict(dataclasses.replace(self, tracks=()))
        out["tracks"] = [t.to_dict() for t in self.tracks]
        return out
