"""Saving and loading a trained block track (joblib, atomic)."""

from __future__ import annotations

import json
import math
import pickle
import zlib
from pathlib import Path

import joblib

from gitract.data.record import DataError
from gitract.evaluation._config import BlockTrackConfig
from gitract.evaluation._track import BlockTrack
from gitract.postprocessing import ThresholdTuning
from gitract.utils.io import atomic_path, write_text_atomic

_TRACK_FILE = "track.joblib"
_TRACK_JSON = "track.json"


def save_block_track(track: BlockTrack, directory: str | Path) -> Path:
    """Write ``track.joblib`` (model, config, thresholds) and ``track.json`` atomically.

    The featurizer is rebuilt from the config on load.

    Returns
    -------
    Path
        ``directory``.
    """
    directory = Path(directory)
    tuning = track.tuning or ThresholdTuning.fixed(track.classes)
    payload = {
        "format": 1,
        "model": track.model,
        "config": track.config.to_dict(),
        "classes": list(track.classes),
        "tuning": tuning.to_dict(),
        "train_keys": list(track.train_keys),
        "n_train_blocks": track.n_train_blocks,
        "class_counts": track.class_counts,
        "fit_seconds": track.fit_seconds,
    }
    with atomic_path(directory / _TRACK_FILE) as tmp:
        joblib.dump(payload, tmp, compress=3)
    meta = {k: v for k, v in payload.items() if k != "model"}
    meta["class_counts"] = {str(k): v for k, v in track.class_counts.items()}
    write_text_atomic(directory / _TRACK_JSON, json.dumps(meta, indent=2) + "\n")
    return directory


def load_block_track(directory: str | Path) -> BlockTrack:
    """Read a track written by :func:`save_block_track`.

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
        config = BlockTrackConfig.from_dict(payload["config"])
    except (EOFError, pickle.UnpicklingError, zlib.error, ValueError, KeyError, TypeError,
            AttributeError, ImportError, IndexError) as exc:
        # joblib reports a cut file as "EOF: reading array data", naming no file.
        raise DataError(f"{path}: cannot read the trained track (truncated or not a saved "
                        f"track: {type(exc).__name__}: {exc})") from None
    classes = tuple(payload["classes"])
    tuning = ThresholdTuning.from_dict(payload["tuning"])
    return BlockTrack(
        model=payload["model"], featurizer=config.make_featurizer(), config=config,
        classes=classes, tuning=tuning, fit_seconds=payload.get("fit_seconds", math.nan),
        n_train_blocks=payload.get("n_train_blocks", 0),
        class_counts=dict(payload.get("class_counts", {})),
        train_keys=tuple(payload.get("train_keys", ())),
    )
