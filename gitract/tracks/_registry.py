"""The one table of names: every track kind and every block classifier.

A name maps to an :class:`Entry`. A *track kind* (``blocks``, ``cnn``, ``unet``, ...) has a
settings dataclass and an adapter; a *block classifier* (``rf``, ``lightgbm``, ``cnn``:
the ``classifier`` of a ``blocks`` track) has a model spec. ``cnn`` is both. Config
checks, the engine (:mod:`gitract.compare`), the command line and the reports look
names up here and nowhere else; a kind module adds itself with one :func:`register` call.

The settings class of a kind is a dataclass with ``from_dict(mapping, path)``: it owns
the kind's defaults and checks and names a bad key by its path
(``tracks[0].params.block_size: must be a positive odd int, got 32``). The adapter class
is built as ``adapter(settings, random_state=seed)`` and has ``fit(index, train_keys,
val_keys, *, parallel)``, ``predict_proba_stack(stack)`` ((S, H, W, C) float32),
``save(directory)``, ``load(directory, *, device, num_threads)`` and the properties
``fit_seconds``, ``model_bytes`` and ``training`` (a dict, or None).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from gitract.tracks._tuning import TUNING_KEYS, TuningSettings
from gitract.utils.schema import KeyProblem, check_keys, one_of, show

__all__ = ["Entry", "classifier", "classifiers", "make_adapter", "make_track", "model_rules",
           "parse_track", "register", "track_kind", "track_kinds", "unregister"]


@dataclass(frozen=True)
class Entry:
    """What a name stands for.

    Attributes
    ----------
    name : str
    settings : type or None
        A track kind's settings dataclass (``from_dict(mapping, path)``).
    adapter : type or None
        A track kind's adapter class (``adapter(settings, random_state=seed)``).
    model : object or None
        A block classifier's spec: ``make(settings)`` (an unfitted estimator seeded with
        ``settings.random_state``) and ``check_params(model_params, path, settings)``.
    device_key : str or None
        Where a track of this kind takes its device (``device`` or
        ``model_params.device``; ``gitract compare --device`` sets it).
    """

    name: str
    settings: type | None = None
    adapter: type | None = None
    model: Any = None
    device_key: str | None = None


_TABLE: dict[str, Entry] = {}


def register(name: str, *, settings: type | None = None, adapter: type | None = None,
             model: Any = None, device_key: str | None = None) -> Entry:
    """Add ``name`` to the table (a track kind: ``settings`` and ``adapter``; a block
    classifier: ``model``; or both). A name is registered once."""
    if name in _TABLE:
        raise ValueError(f"{name!r} is registered already")
    if (settings is None) != (adapter is None):
        raise ValueError(f"{name!r}: a track kind needs both settings and adapter")
    if settings is not None and not dataclasses.is_dataclass(settings):
        raise TypeError(f"{name!r}: settings must be a dataclass, got {settings!r}")
    if settings is None and model is None:
        raise ValueError(f"{name!r}: give a track kind (settings, adapter) or a model")
    _TABLE[name] = Entry(name, settings, adapter, model, device_key)
    return _TABLE[name]


def unregister(name: str) -> None:
    """Remove ``name`` (tests that register a kind of their own)."""
    _TABLE.pop(name, None)


def track_kinds() -> tuple[str, ...]:
    """The registered track kinds, in registration order."""
    return tuple(n for n, e in _TABLE.items() if e.adapter is not None)


def classifiers() -> tuple[str, ...]:
    """The registered block classifiers, in registration order."""
    return tuple(n for n, e in _TABLE.items() if e.model is not None)


def track_kind(name: str, path: str = "") -> Entry:
    """The entry of a track kind; a :class:`KeyProblem` (a ``ValueError``) at ``path``
    lists the kinds for an unknown one."""
    entry = _TABLE.get(name)
    if entry is None or entry.adapter is None:
        raise KeyProblem(path, one_of(track_kinds())(name) or f"not a track kind: {show(name)}")
    return entry


def classifier(name: str, path: str = "") -> Entry:
    """The entry of a block classifier (``rf``, ``lightgbm``, ``cnn``, ...)."""
    entry = _TABLE.get(name)
    if entry is None or entry.model is None:
        raise KeyProblem(path, one_of(classifiers())(name) or f"not a classifier: {show(name)}")
    return entry


def parse_track(kind: str, params: Any, path: str = "params"
                ) -> tuple[Any, TuningSettings, dict[str, Any]]:
    """A track's ``params`` parsed once: ``(settings, tuning, params as written)``.

    The tuning keys (``threshold_grid``, ``min_sizes``, ``hausdorff_max_side``) go to
    :class:`TuningSettings`, the rest to the kind's settings. The params come back as
    written (so a run's ``config.json`` and its step keys do not depend on defaults),
    except numbers written as strings (YAML 1.1 reads ``1e-3`` as one), which become
    numbers.

    Raises
    ------
    KeyProblem
        The first problem, at its key path under ``path``.
    """
    entry = track_kind(kind)
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise KeyProblem(path, f"expected a mapping, got {show(params)}")
    check_keys(params, [*(f.name for f in fields(entry.settings)), *TUNING_KEYS], path)
    tuning = TuningSettings.from_dict({k: v for k, v in params.items() if k in TUNING_KEYS},
                                      path)
    settings = entry.settings.from_dict(
        {k: v for k, v in params.items() if k not in TUNING_KEYS}, path)
    written = {}
    for key, value in params.items():
        parsed = getattr(tuning if key in TUNING_KEYS else settings, key)
        written[key] = parsed if isinstance(value, str) and not isinstance(parsed, str) \
            else value
    return settings, tuning, written


def make_adapter(kind: str, settings: Any, *, random_state: int, written=()) -> Any:
    """The adapter of a track: ``settings.random_state`` (where the settings have one and
    the track's params do not set it, ``written``) becomes the run's track seed."""
    entry = track_kind(kind)
    if "random_state" not in written and any(f.name == "random_state"
                                             for f in fields(settings)):
        settings = dataclasses.replace(settings, random_state=random_state)
    return entry.adapter(settings, random_state=random_state)


def model_rules(kind: str) -> str | None:
    """The adapter's ``model_rules`` (how a model is chosen beyond its settings, e.g. the
    checkpoint's criterion), which the engine puts in the model key; None when it has
    none (the key is then what it was before rules were recorded)."""
    return getattr(track_kind(kind).adapter, "model_rules", None)


def make_track(kind: str, params: Mapping[str, Any] | None, *, random_state: int) -> Any:
    """The adapter of a track given as written (a run's ``config.json``): its params
    parsed, then :func:`make_adapter`."""
    settings, _, written = parse_track(kind, params)
    return make_adapter(kind, settings, random_state=random_state, written=written)
