"""Frozen dataclass configs for a comparison run, their YAML loader and their checks.

A YAML file overrides only the keys it names. Everything is checked before any data is
read (types and ranges of every field, unknown keys with a suggestion, track kinds, track
parameters and the classifiers' own parameters); a problem raises :class:`ConfigError`
naming the file, the key path and the problem, e.g.
``x.yaml: tracks[2].params.model_params.n_estimator: unknown parameter of LGBMClassifier
(did you mean n_estimators?)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gitract.config._experiment import (
    DataConfig,
    ExperimentConfig,
    LearningCurveConfig,
    ReportConfig,
    SplitConfig,
    TrackConfig,
)
from gitract.config._overrides import apply_sets, blame, parse_sets
from gitract.config._schema import ConfigError, KeyProblem
from gitract.config._sections import build_experiment
from gitract.config._yaml import check_file_keys, read_config_file
from gitract.models import device_problem
from gitract.tracks import classifier, classifiers, track_kind

__all__ = [
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "LearningCurveConfig",
    "ReportConfig",
    "SplitConfig",
    "TrackConfig",
    "apply_sets",
    "blame",
    "check_devices",
    "config_from_dict",
    "load_config",
    "parse_sets",
    "read_config_file",
]


def config_from_dict(raw: Any, *, where: str = "config") -> ExperimentConfig:
    """Check a plain mapping (e.g. parsed YAML) entirely and build the config.

    Raises
    ------
    ConfigError
        The first problem, naming ``where``, the key path and the problem.
    """
    try:
        return build_experiment(raw)
    except KeyProblem as exc:
        raise ConfigError(where, exc.key, exc.problem) from None


def device_keys(tracks: Sequence[TrackConfig]) -> list[tuple[str, str]]:
    """``(key path, device)`` of every track's device setting that is given, where the
    registry says a kind (``device_key``), or a block track's classifier, takes one: a
    segmenter's ``params.device``, a block CNN's ``params.model_params.device``."""
    out = []
    for i, track in enumerate(tracks):
        key = track_kind(track.kind).device_key
        name = getattr(track.settings, "classifier", None)
        if key is None and name in classifiers():
            key = classifier(name).device_key
        if key is None:
            continue
        node: Any = track.params
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            out.append((f"tracks[{i}].params.{key}", node))
    return out


def check_devices(config: ExperimentConfig, *, where: str = "config") -> None:
    """Check that every deep track's device is present on this machine (``cuda`` when
    CUDA is available, ``cuda:N`` with N below the device count, ``mps``); torch is
    imported only when a track names such a device. Run before any work, not by
    :func:`config_from_dict` (a run folder's config is read on other machines too).

    Raises
    ------
    ConfigError
        Naming ``where``, the key (``tracks[1].params.device``) and the problem.
    """
    for key, device in device_keys(config.tracks):
        problem = device_problem(device)
        if problem is not None:
            raise ConfigError(where, key, problem)


def load_config(path: str | Path, *, overrides: dict[str, Any] | None = None,
                sets: Sequence[str] = ()) -> ExperimentConfig:
    """Read and check a YAML config.

    Beyond :func:`config_from_dict`'s checks, a file must give ``name`` and at least one
    track (here or through ``overrides`` / ``sets``), and may not give a key twice.

    Parameters
    ----------
    path : path
    overrides : dict, optional
        Top-level keys that win over the file (e.g. ``{"seed": 1}``).
    sets : sequence of str
        ``--set`` overrides, ``"dotted.key=yaml value"`` (see
        :mod:`gitract.config._overrides`); applied after ``overrides``.

    Raises
    ------
    ConfigError
        Naming the file (or ``--set``), the key path and the problem; a device the
        machine lacks is one (:func:`check_devices`).
    """
    raw = read_config_file(path)
    raw.update(overrides or {})
    raw, paths = apply_sets(raw, parse_sets(sets))
    try:
        check_file_keys(raw, str(path))
        config = config_from_dict(raw, where=str(path))
        check_devices(config, where=str(path))
        return config
    except ConfigError as exc:
        raise blame(exc, paths) from None
