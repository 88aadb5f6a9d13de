"""Checks of a track's parameters and of its classifier's parameters, before any data.

A block track's parameters are :class:`gitract.evaluation.BlockTrackConfig` fields, a
U-Net, U-Net++ or DeepLabV3+ track's :class:`gitract.models.unet.UNetConfig` fields (plus
the sweep's keys; the kind sets ``architecture``);
``model_params`` are checked against the estimator's own ``get_params()`` keys (and, for
scikit-learn's forest, its parameter constraints), so a misspelt ``n_estimator`` is named
with the file and key path instead of failing inside the library after the data loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any

from gitract.config._experiment import SEGMENTER_KINDS
from gitract.config._schema import (
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
from gitract.evaluation import BlockTrackConfig
from gitract.features import make_featurizer
from gitract.models.pipelines import LGBM_DEFAULTS, RF_DEFAULTS

__all__ = ["check_model_params", "check_track_params", "device_keys"]

#: Track parameters that set the validation sweep rather than the model (every kind).
TUNING_HINTS: dict[str, Any] = {"threshold_grid": tuple[float, ...],
                                "min_sizes": tuple[int, ...],
                                "hausdorff_max_side": int | None}

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _device(value: Any) -> str | None:
    if isinstance(value, str) and _DEVICE.match(value):
        return None
    return f"must be auto, cpu, cuda, cuda:N or mps, got {show(value)}"


def _odd(value: int) -> str | None:
    return None if value >= 1 and value % 2 else f"must be a positive odd int, got {value!r}"


_TUNING_RULES = {"threshold_grid": between(0.0, 1.0), "min_sizes": at_least(0),
                 "hausdorff_max_side": at_least(1)}

_BLOCK_RULES = {
    **_TUNING_RULES,
    "classifier": one_of(("rf", "lightgbm", "cnn")),
    "features": one_of(("filters", "raw")),
    "interpolation": one_of(("nearest", "linear", "cubic")),
    "block_size": _odd, "step": at_least(1), "n_per_class": at_least(0),
    "background_cap": at_least(0), "border_fraction": between(0.0, 1.0),
    "max_train_blocks": at_least(1), "max_train_slices": at_least(1),
    "training": one_of(("blocks", "dense")),
}

_UNET_RULES = {
    **_TUNING_RULES,
    "device": _device, "up_mode": one_of(("transpose", "bilinear")),
    "architecture": one_of(SEGMENTER_KINDS),
    "dropout": between(0.0, 1.0, open_high=True), "lr": at_least(0.0),
    "weight_decay": at_least(0.0), "max_epochs": at_least(1), "max_steps": at_least(1),
    "max_minutes": at_least(0.0), "patience": at_least(1), "bce_weight": between(0.0, 1.0),
    "percentiles": between(0.0, 100.0), "num_threads": at_least(1),
}


def device_keys(tracks: Any) -> list[tuple[str, str]]:
    """``(key path, device)`` of every deep track's device setting that is given: a
    segmenter's ``params.device``, a block CNN's ``params.model_params.device``."""
    out = []
    for i, track in enumerate(tracks):
        params = track.params or {}
        if track.kind in SEGMENTER_KINDS:
            if "device" in params:
                out.append((f"tracks[{i}].params.device", params["device"]))
            continue
        model_params = params.get("model_params") or {}
        if (track.kind == "cnn" or params.get("classifier") == "cnn") \
                and "device" in model_params:
            out.append((f"tracks[{i}].params.model_params.device", model_params["device"]))
    return out


def check_track_params(kind: str, params: Any, path: str) -> dict[str, Any]:
    """Check the ``params`` of a track of ``kind``; returns them normalised (numeric
    strings of number fields as numbers; everything else as given)."""
    if kind in SEGMENTER_KINDS:
        return _check_unet(kind, params, path)
    return _check_blocks(kind, params, path)


def _normalised(params: Mapping, checked: Mapping) -> dict[str, Any]:
    # Only numbers written as strings change: lists stay lists so a step's key (a hash
    # of the parameters) is what it was before the checks existed.
    return {k: checked[k] if isinstance(params[k], str) and not isinstance(checked[k], str)
            else params[k] for k in params}


def _check_blocks(kind: str, params: Any, path: str) -> dict[str, Any]:
    checked = check_dataclass(BlockTrackConfig, params, path, rules=_BLOCK_RULES)
    if kind == "cnn":
        for key, want in (("classifier", "cnn"), ("features", "raw")):
            if key in checked and checked[key] != want:
                raise KeyProblem(join(path, key), f"a track of kind cnn has {key} {want!r}, "
                                                  f"got {show(checked[key])}")
        checked = {"classifier": "cnn", "features": "raw", **checked}
    try:
        config = BlockTrackConfig(**checked)
    except (TypeError, ValueError) as exc:
        raise problem_of(exc, [f.name for f in fields(BlockTrackConfig)], path) from None
    _check_feature_params(config, join(path, "feature_params"))
    check_model_params(config.classifier, config.model_params, join(path, "model_params"),
                       block_size=config.block_size)
    return _normalised(params or {}, checked)


def _check_feature_params(config, path: str) -> None:
    cls = type(make_featurizer(config.features, block_size=config.block_size))
    names = [f.name for f in fields(cls)] if is_dataclass(cls) else []
    if names:
        check_keys(config.feature_params, [n for n in names if n != "block_size"], path,
                   what=f"parameter of {cls.__name__}")
    try:
        config.make_featurizer()
    except (TypeError, ValueError) as exc:
        raise problem_of(exc, names, path) from None


def _check_unet(kind: str, params: Any, path: str) -> dict[str, Any]:
    from gitract.models.unet import UNetConfig

    checked = check_dataclass(UNetConfig, params, path, rules=_UNET_RULES,
                              extra=TUNING_HINTS)
    # The kind names the network (the report lists tracks by kind), so a track's
    # architecture, where written, must be its kind.
    if checked.get("architecture", kind) != kind:
        raise KeyProblem(join(path, "architecture"),
                         f"a track of kind {kind} has architecture {kind!r}, got "
                         f"{show(checked['architecture'])} (set the track's kind instead)")
    model = {"architecture": kind,
             **{k: v for k, v in checked.items() if k not in TUNING_HINTS}}
    try:
        UNetConfig.from_dict(model)
    except (TypeError, ValueError) as exc:
        raise problem_of(exc, [f.name for f in fields(UNetConfig)], path) from None
    return _normalised(params or {}, checked)


# -------------------------------------------------------------------- model params
def _estimator(classifier: str, block_size: int):
    if classifier == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier
    if classifier == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier
    from gitract.models.cnn import BlockCNNClassifier  # torch only for a cnn track

    return BlockCNNClassifier


def _lightgbm_core_params() -> set[str]:
    """LightGBM's own parameters and their aliases, which ``LGBMClassifier`` passes on
    (``verbose``, ``min_data_in_leaf``, ...) though ``get_params()`` does not list them."""
    names = set(LGBM_DEFAULTS)
    try:  # the library's own table (private; without it only get_params() keys count)
        from lightgbm.basic import _ConfigAliases

        for name, aliases in _ConfigAliases._get_all_param_aliases().items():
            names.add(name)
            names.update(aliases)
    except (ImportError, AttributeError):
        pass
    return names


def check_model_params(classifier: str, model_params: Mapping[str, Any], path: str, *,
                       block_size: int = 33) -> None:
    """Check a block classifier's ``model_params``: every key a parameter of the
    estimator (``get_params()``), and the values where the estimator can say so before
    fitting (scikit-learn's parameter constraints; the block CNN's own checks)."""
    if not isinstance(model_params, Mapping):
        raise KeyProblem(path, f"expected a mapping, got {show(model_params)}")
    cls = _estimator(classifier, block_size)
    known = set(cls().get_params())
    if classifier == "lightgbm":
        known |= _lightgbm_core_params()
    if classifier == "cnn" and "block_size" in model_params:
        raise KeyProblem(join(path, "block_size"),
                         "set block_size on the track (params.block_size), not here")
    check_keys(model_params, known, path, what=f"parameter of {cls.__name__}")
    if "device" in model_params and _device(model_params["device"]):
        raise KeyProblem(join(path, "device"), _device(model_params["device"]))
    if classifier == "rf":
        estimator = cls(**{**RF_DEFAULTS, **model_params})
        try:
            estimator._validate_params()  # scikit-learn's own constraints, no data needed
        except (TypeError, ValueError) as exc:
            name = re.search(r"The '(\w+)' parameter", str(exc))
            key = join(path, name.group(1)) if name else path
            text = str(exc).split(" parameter of ", 1)[-1]
            raise KeyProblem(key, re.sub(r"^\w+ ", "", text).rstrip(".")) from None
    elif classifier == "cnn":
        channels = model_params.get("channels", (16,))
        if isinstance(channels, (str, bytes)) or not isinstance(channels, (list, tuple)) \
                or not channels or not all(isinstance(c, int) and not isinstance(c, bool)
                                           and c > 0 for c in channels):
            raise KeyProblem(join(path, "channels"),
                             f"expected a list of positive ints, got {show(channels)}")
        try:
            cls(block_size=block_size, **model_params)._check_params()
        except (TypeError, ValueError) as exc:
            raise problem_of(exc, known, path) from None
