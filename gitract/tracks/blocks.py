"""Track kind ``blocks``: a scikit-learn-style classifier on block features.

Its settings (:class:`BlockSettings`), its adapter (:class:`BlockTrackAdapter`: fit on the
index, probability maps per scan, save / load, training record), its classifiers
``rf`` (random forest) and ``lightgbm`` and their parameter checks, and the registration
lines. The work itself (sampling, featurising, fitting, predicting) is
:mod:`gitract.tracks._block_track`; the block CNN (kind and classifier ``cnn``) is
:mod:`gitract.tracks.block_cnn`.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import joblib

from gitract.blocks import check_block_size
from gitract.data.record import DataError, SliceStack
from gitract.features import FEATURIZER_KINDS, make_featurizer
from gitract.models import device_name_problem
from gitract.models.pipelines import LGBM_DEFAULTS, RF_DEFAULTS, make_lgbm, make_rf
from gitract.postprocessing import ThresholdTuning
from gitract.probmaps import INTERPOLATIONS
from gitract.tracks._autocontext import context_column_names
from gitract.tracks._block_track import BlockTrack
from gitract.tracks._registry import classifier, classifiers, register
from gitract.tracks._tuning import TUNING_KEYS
from gitract.utils.io import atomic_path, write_text_atomic
from gitract.tracks._staged_fit import fit_from_index
from gitract.utils.schema import (
    KeyProblem,
    at_least,
    between,
    check_dataclass,
    check_keys,
    join,
    one_of,
    problem_of,
    show,
)

__all__ = ["BlockSettings", "BlockTrackAdapter", "load_block_track", "save_block_track"]

_RULES = {
    "features": one_of(FEATURIZER_KINDS), "stages": between(1, 3),
    "crossfit_folds": at_least(2), "search_trials": at_least(0),
    "context_scales_mm": between(0.0, 1000.0, open_low=True), "interpolation": one_of(INTERPOLATIONS),
    "step": at_least(1), "n_per_class": at_least(0), "background_cap": at_least(0),
    "border_fraction": between(0.0, 1.0), "max_train_blocks": at_least(1),
    "max_train_slices": at_least(1), "training": one_of(("blocks", "dense")),
}


def _positive_or_none(value: Any, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")


@dataclass(frozen=True)
class BlockSettings:
    """Everything that defines a block-classifier track (frozen; JSON via ``to_dict``).

    Attributes
    ----------
    classifier : str
        A registered block classifier: ``"rf"``, ``"lightgbm"`` or ``"cnn"``
        (:class:`gitract.models.cnn.BlockCNNClassifier` on raw blocks).
    block_size : int
        Positive odd block size (33 or 63 in the study).
    step : int
        Stride of the prediction grid (probability maps are interpolated in between).
    features : {"filters", "bank", "raw"}
        Featurizer kind; ``feature_params`` go to ``make_featurizer``. ``"filters"``:
        the first feature set (pixel scales; kept for the ablation); ``"bank"``: the
        filter bank in mm (``feature_params.neighbours: true`` adds the 2.5D columns). For the CNN the
        raw featurizer's ``context`` follows ``model_params.context_features``; written
        out, it must agree.
    n_per_class : int
        Training blocks per organ class and slice (fewer when the organ is smaller).
    background_cap : int
        Background blocks per slice; ``border_fraction`` of them from the ring around
        the organs, the rest inside the body (``body_background``) or anywhere.
    training : {"blocks", "dense"}
        How the CNN trains: on the sampled blocks, or densely on every block centred in
        crops of whole training slices (:meth:`BlockCNNClassifier.fit_dense`).
    max_train_slices : int or None
        Cap of the training slices (a seeded share per stack; None: all).
    max_train_blocks : int or None
        Cap of the whole training sample (each of ``n`` training slices keeps at most
        ``ceil(max_train_blocks / n)`` of its blocks; None: no cap).
    interpolation : {"nearest", "linear", "cubic"}
    random_state : int
        Seeds the sampling and the classifier (the run's track seed unless set).
    model_params : mapping
        Overrides of the classifier's defaults (``make_rf`` / ``make_lgbm`` / the CNN).
    stages : {1, 2, 3}
        Auto-context stages (rf / lightgbm): stage k adds columns of stage k-1's maps
        (smoothed at ``context_scales_mm``, read on a 3x3 block-sized grid), training
        cases' maps cross-fitted over ``crossfit_folds`` groups of training cases.
    search_trials : int
        With > 0, a seeded random search of that many trials picks ``model_params`` on
        the validation cases (trial 0: the given ones; :mod:`gitract.tracks._capacity`).
    """

    classifier: str = "rf"
    block_size: int = 33
    step: int = 4
    features: str = "filters"
    feature_params: Mapping[str, Any] = field(default_factory=dict)
    n_per_class: int = 200
    background_cap: int = 400
    border_fraction: float = 0.5
    body_background: bool = True
    max_train_blocks: int | None = None
    training: str = "blocks"
    max_train_slices: int | None = None
    interpolation: str = "linear"
    random_state: int = 0
    model_params: Mapping[str, Any] = field(default_factory=dict)
    stages: int = 1
    context_scales_mm: tuple[float, ...] = (2.0, 8.0, 24.0)
    crossfit_folds: int = 3
    search_trials: int = 0

    def __post_init__(self) -> None:
        if self.classifier not in classifiers():
            raise ValueError(f"classifier must be one of {', '.join(classifiers())}, "
                             f"got {self.classifier!r}")
        check_block_size(self.block_size)
        if isinstance(self.step, bool) or not isinstance(self.step, int) or self.step < 1:
            raise ValueError(f"step must be a positive int, got {self.step!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, "
                             f"got {self.interpolation!r}")
        _positive_or_none(self.max_train_blocks, "max_train_blocks")
        _positive_or_none(self.max_train_slices, "max_train_slices")
        if self.training not in ("blocks", "dense"):
            raise ValueError(f"training must be 'blocks' or 'dense', got {self.training!r}")
        if self.training == "dense" and self.classifier != "cnn":
            raise ValueError(f"training='dense' needs classifier 'cnn', got {self.classifier!r}")
        if self.features not in FEATURIZER_KINDS:
            raise ValueError(f"features must be one of {FEATURIZER_KINDS}, got {self.features!r}")
        if self.stages not in (1, 2, 3):
            raise ValueError(f"stages must be 1, 2 or 3, got {self.stages!r}")
        if self.stages > 1 and self.classifier == "cnn":
            raise ValueError("stages > 1 (auto-context) needs classifier 'rf' or 'lightgbm'")
        if self.search_trials and self.classifier == "cnn":
            raise ValueError("search_trials needs classifier 'rf' or 'lightgbm'")
        for name in ("crossfit_folds", "search_trials"):
            value, low = getattr(self, name), 2 if name == "crossfit_folds" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        scales = tuple(self.context_scales_mm)
        if not scales or any(isinstance(x, bool) or not isinstance(x, (int, float)) or x <= 0
                             for x in scales):
            raise ValueError(f"context_scales_mm must be positive numbers, got {scales!r}")
        object.__setattr__(self, "context_scales_mm", tuple(float(x) for x in scales))
        if self.classifier == "cnn" and self.features != "raw":
            raise ValueError(f"classifier 'cnn' needs features='raw', got {self.features!r}")
        if self.classifier == "cnn" and "context" in dict(self.feature_params):
            want = dict(self.model_params).get("context_features", False)
            if dict(self.feature_params)["context"] != want:
                raise ValueError(
                    f"feature_params.context must agree with model_params.context_features "
                    f"({want!r}) for classifier 'cnn' (it follows that key; leave it out), "
                    f"got {dict(self.feature_params)['context']!r}")
        object.__setattr__(self, "feature_params", dict(self.feature_params))
        object.__setattr__(self, "model_params", dict(self.model_params))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, path: str = "") -> BlockSettings:
        """Settings from a mapping of fields (a track's ``params``, or :meth:`to_dict`);
        every value checked, also ``feature_params`` and ``model_params`` against the
        featurizer's and the classifier's own parameters.

        Raises
        ------
        KeyProblem
            A ``ValueError`` naming the first bad key by its path under ``path``.
        """
        rules = {**_RULES, "classifier": one_of(classifiers())}
        checked = check_dataclass(cls, data, path, rules=rules)
        try:
            settings = cls(**checked)
        except (TypeError, ValueError) as exc:
            raise problem_of(exc, [f.name for f in fields(cls)], path) from None
        settings._check_feature_params(join(path, "feature_params"))
        classifier(settings.classifier).model.check_params(
            settings.model_params, join(path, "model_params"), settings)
        return settings

    @classmethod
    def from_saved(cls, data: Mapping[str, Any]) -> BlockSettings:
        """:meth:`to_dict`'s output, also of earlier versions (which kept the sweep's
        settings here too)."""
        return cls(**{k: v for k, v in data.items() if k not in TUNING_KEYS})

    def to_dict(self) -> dict:
        """JSON-able dict; :meth:`from_saved` rebuilds the settings."""
        return asdict(self)

    def _check_feature_params(self, path: str) -> None:
        cls = type(make_featurizer(self.features, block_size=self.block_size))
        names = [f.name for f in fields(cls) if f.init] if is_dataclass(cls) else []
        if names:
            check_keys(self.feature_params, [n for n in names if n != "block_size"], path,
                       what=f"parameter of {cls.__name__}")
        try:
            self.make_featurizer()
        except (TypeError, ValueError) as exc:
            raise problem_of(exc, names, path) from None

    def make_featurizer(self):
        """The featurizer these settings name."""
        params = dict(self.feature_params)
        if self.classifier == "cnn" and self.model_params.get("context_features", False):
            params.setdefault("context", True)  # the CNN's X: pixels, then context columns
        return make_featurizer(self.features, block_size=self.block_size, **params)

    def feature_names(self, classes) -> list[str]:
        """Names of the last stage's columns (block features, then the context columns
        of each earlier stage's maps... only the previous one's: stage k reads k-1)."""
        names = list(self.make_featurizer().feature_names())
        if self.stages > 1:
            names += context_column_names(classes, self.context_scales_mm, self.stages)
        return names

    def make_model(self):
        """An unfitted classifier seeded with ``random_state`` (the registry's spec)."""
        return classifier(self.classifier).model.make(self)


# ----------------------------------------------------------------- the classifiers
class _SklearnSpec:
    """A scikit-learn classifier in a Pipeline (``make_rf`` / ``make_lgbm``)."""

    def __init__(self, make, defaults: Mapping[str, Any], estimator: str) -> None:
        self._make, self.defaults, self.estimator = make, dict(defaults), estimator

    def make(self, settings: BlockSettings):
        return self._make(**{"random_state": settings.random_state, **settings.model_params})

    def estimator_class(self) -> type:
        return type(self._make().named_steps["clf"])

    def known_params(self) -> set[str]:
        return set(self.estimator_class()().get_params())

    def check_params(self, model_params: Any, path: str, settings: BlockSettings) -> None:
        """Every key a parameter of the estimator (``get_params()``); values where the
        estimator can say so before fitting (scikit-learn's parameter constraints)."""
        if not isinstance(model_params, Mapping):
            raise KeyProblem(path, f"expected a mapping, got {show(model_params)}")
        check_keys(model_params, self.known_params(), path,
                   what=f"parameter of {self.estimator}")
        if "device" in model_params and device_name_problem(model_params["device"]):
            raise KeyProblem(join(path, "device"), device_name_problem(model_params["device"]))


class _ForestSpec(_SklearnSpec):
    def check_params(self, model_params: Any, path: str, settings: BlockSettings) -> None:
        super().check_params(model_params, path, settings)
        estimator = self.estimator_class()(**{**self.defaults, **model_params})
        try:
            estimator._validate_params()  # scikit-learn's own constraints, no data needed
        except (TypeError, ValueError) as exc:
            name = re.search(r"The '(\w+)' parameter", str(exc))
            key = join(path, name.group(1)) if name else path
            text = str(exc).split(" parameter of ", 1)[-1]
            raise KeyProblem(key, re.sub(r"^\w+ ", "", text).rstrip(".")) from None


class _LightGBMSpec(_SklearnSpec):
    def known_params(self) -> set[str]:
        """LightGBM's own parameters and their aliases too, which ``LGBMClassifier``
        passes on (``verbose``, ``min_data_in_leaf``, ...)."""
        names = super().known_params() | set(self.defaults)
        try:  # the library's own table (private; without it only get_params() keys count)
            from lightgbm.basic import _ConfigAliases

            for name, aliases in _ConfigAliases._get_all_param_aliases().items():
                names.add(name)
                names.update(aliases)
        except (ImportError, AttributeError):
            pass
        return names


# ------------------------------------------------------------------------ adapter
class BlockTrackAdapter:
    """A block track (any registered classifier) behind the engine's face."""

    def __init__(self, settings: BlockSettings, *, random_state: int) -> None:
        self.settings = settings
        self.random_state = random_state
        self.track_: BlockTrack | None = None
        self.search_: list = []

    def fit(self, index, train_keys: Sequence[str], val_keys: Sequence[str], *,
            parallel=None) -> BlockTrackAdapter:
        """Fit on the training scans (capacity search on the validation scans, auto-context
        stages: :func:`gitract.tracks._staged_fit.fit_from_index`); test scans unread."""
        self.track_, _, self.search_ = fit_from_index(index, train_keys, val_keys,
                                                      self.settings, parallel=parallel)
        self.track_.search = self.search_
        return self

    def predict_proba_stack(self, stack: SliceStack):
        return self.track_.predict_proba([stack])[stack.key]

    @property
    def fit_seconds(self) -> float:
        return float(self.track_.fit_seconds + (self.track_.featurize_seconds or 0.0))

    @property
    def model_bytes(self) -> int:
        return int(self.track_.model_bytes)

    @property
    def training(self) -> dict | None:
        """Budget and curve of a net (the CNN; by epochs, or by steps when trained
        densely); None for a classifier without a ``history_``."""
        model = self.track_.model
        history = getattr(model, "history_", None)
        if not isinstance(history, dict) or not history.get("train_loss"):
            return None
        val = history.get("val_loss", [])
        n_epochs = int(getattr(model, "n_epochs_", len(history["train_loss"])))
        best = int(getattr(model, "best_epoch_", 0)) + 1
        curve = [{"epoch": i + 1, "train_loss": float(t),
                  "val_loss": float(val[i]) if i < len(val) else None}
                 for i, t in enumerate(history["train_loss"])]
        if history.get("step"):  # dense training: a step budget, curve points by step
            for i, point in enumerate(curve):
                point["step"] = int(history["step"][i])
            curve = [{k: p[k] for k in ("epoch", "step", "train_loss", "val_loss")}
                     for p in curve]
            return {"budget": {"max_steps": int(history["step"][-1])}, "epochs": n_epochs,
                    "steps": int(getattr(model, "n_steps_", history["step"][-1])),
                    "stopped": "max_steps", "best_epoch": best, "curve": curve}
        max_epochs = getattr(model, "max_epochs", None)
        stopped = "max_epochs" if max_epochs is not None and n_epochs >= max_epochs else "patience"
        return {"budget": {"max_epochs": max_epochs}, "epochs": n_epochs, "steps": None,
                "stopped": stopped, "best_epoch": best, "curve": curve}

    def save(self, directory: Path) -> None:
        save_block_track(self.track_, directory)

    def load(self, directory: Path, *, device: str | None = None,
             num_threads: int | None = None) -> BlockTrackAdapter:
        """Read a saved track; ``num_threads`` overrides the CNN's torch threads (a CNN
        saved on a GPU machine already falls back to the CPU, so ``device`` is unused)."""
        self.track_ = load_block_track(directory)
        if num_threads is not None and hasattr(self.track_.model, "num_threads"):
            self.track_.model.num_threads = int(num_threads)
        return self


# ---------------------------------------------------------------------- save / load
_TRACK_FILE = "track.joblib"
_TRACK_JSON = "track.json"


def save_block_track(track: BlockTrack, directory: str | Path) -> Path:
    """Write ``track.joblib`` (model, settings, thresholds) and ``track.json``
    atomically; the featurizer is rebuilt from the settings on load."""
    directory = Path(directory)
    tuning = track.tuning or ThresholdTuning.fixed(track.classes)
    payload = {
        "format": 1, "model": track.model, "stage_models": list(track.stage_models),
        "config": track.config.to_dict(), "search": list(getattr(track, "search", [])),
        "classes": list(track.classes), "tuning": tuning.to_dict(),
        "train_keys": list(track.train_keys), "n_train_blocks": track.n_train_blocks,
        "class_counts": track.class_counts, "fit_seconds": track.fit_seconds,
    }
    with atomic_path(directory / _TRACK_FILE) as tmp:
        joblib.dump(payload, tmp, compress=3)
    meta = {k: v for k, v in payload.items() if k not in ("model", "stage_models")}
    meta["class_counts"] = {str(k): v for k, v in track.class_counts.items()}
    write_text_atomic(directory / _TRACK_JSON, json.dumps(meta, indent=2) + "\n")
    return directory


def load_block_track(directory: str | Path) -> BlockTrack:
    """Read a track written by :func:`save_block_track` (this version or an earlier one).

    Raises
    ------
    FileNotFoundError
        When ``directory/track.joblib`` is missing.
    DataError
        When it cannot be read (truncated, not a saved track); names the file.
    """
    path = Path(directory) / _TRACK_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no trained block track at {path}")
    try:
        payload = joblib.load(path)
        config = BlockSettings.from_saved(payload["config"])
    except (EOFError, pickle.UnpicklingError, zlib.error, ValueError, KeyError, TypeError,
            AttributeError, ImportError, IndexError) as exc:
        # joblib reports a cut file as "EOF: reading array data", naming no file.
        raise DataError(f"{path}: cannot read the trained track (truncated or not a saved "
                        f"track: {type(exc).__name__}: {exc})") from None
    return BlockTrack(
        model=payload["model"], featurizer=config.make_featurizer(), config=config,
        classes=tuple(payload["classes"]), tuning=ThresholdTuning.from_dict(payload["tuning"]),
        stage_models=tuple(payload.get("stage_models", ())),
        fit_seconds=payload.get("fit_seconds", math.nan),
        n_train_blocks=payload.get("n_train_blocks", 0),
        class_counts=dict(payload.get("class_counts", {})),
        train_keys=tuple(payload.get("train_keys", ())), search=list(payload.get("search", [])),
    )


register("rf", model=_ForestSpec(make_rf, RF_DEFAULTS, "RandomForestClassifier"))
register("lightgbm", model=_LightGBMSpec(make_lgbm, LGBM_DEFAULTS, "LGBMClassifier"))
register("blocks", settings=BlockSettings, adapter=BlockTrackAdapter)
