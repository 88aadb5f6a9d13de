"""Writing a run folder's files: atomic JSON and CSV, standard JSON (no NaN), step keys."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gitract.data.record import DataError
from gitract.utils.io import atomic_path, write_text_atomic


def hash_key(obj: Any) -> str:
    """Short stable hash of a JSON-able object (a step's key)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def clean(o):
    """NaN -> None recursively, so JSON stays standard."""
    if isinstance(o, dict):
        return {k: clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    if isinstance(o, (float, np.floating)) and not math.isfinite(float(o)):
        return None
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return o


def write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def read_json(path: Path):
    """A run file's JSON; a missing, cut or invalid file raises :class:`DataError` naming
    it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: missing; the run has not finished (rerun it to complete "
                        "it)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read it ({exc})") from None
