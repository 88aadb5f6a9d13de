"""Step markers of a run folder: a finished step is trusted only when its files are there.

A step directory (``steps/fold<k>/<track>/model`` or ``.../eval``) is finished when its
``done.json`` holds the step's key (a hash of everything the step depends on) **and**
every file the step wrote, listed in ``done.json`` with its size, is present, readable
and of that size. Anything else (no marker, another key, a marker of an older version
that lists no files, a missing, unreadable or truncated file) means the step is computed
again; :func:`step_status` says why in words for the run's log.

A run folder delivered by git without its ignored files (models, example maps) therefore
recomputes exactly the steps whose files are gone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from gitract.utils.io import write_text_atomic

MARKER = "done.json"

__all__ = ["MARKER", "mark_done", "read_marker", "step_status"]


def read_marker(directory: str | Path) -> dict | None:
    """The parsed ``done.json`` of ``directory`` (None when absent or unreadable)."""
    path = Path(directory) / MARKER
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _readable(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError:
        return False
    return True


def step_status(directory: str | Path, key: str | None) -> tuple[bool, str]:
    """``(done, reason)``: whether the step in ``directory`` finished with ``key``
    (``None``: with any key, e.g. to load a trained model of a finished run).

    ``reason`` is empty when done, else one phrase for the log ("no done.json",
    "settings changed", "model/track.joblib is missing", ...).

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> step_status(d, "abc")
    (False, 'not run yet')
    >>> _ = (d / "a.csv").write_text("x\\n")
    >>> mark_done(d, "abc")
    >>> step_status(d, "abc")
    (True, '')
    >>> (d / "a.csv").unlink()
    >>> step_status(d, "abc")
    (False, 'a.csv is missing')
    """
    directory = Path(directory)
    marker = read_marker(directory)
    if marker is None:
        if (directory / MARKER).exists():
            return False, f"{MARKER} is unreadable"
        return False, "not run yet"
    if key is not None and marker.get("key") != key:
        return False, "settings changed since it ran"
    files = marker.get("files")
    if not isinstance(files, dict):
        return False, f"{MARKER} lists no output files (written by an older version)"
    for name, size in sorted(files.items()):
        path = directory / name
        if not path.is_file():
            return False, f"{name} is missing"
        if not _readable(path):
            return False, f"{name} is unreadable"
        if size is not None and path.stat().st_size != size:
            return False, f"{name} has {path.stat().st_size} bytes, {size} expected"
    return True, ""


def mark_done(directory: str | Path, key: str, **extra) -> None:
    """Write ``done.json`` (atomically, last): the key, the time, and the name and size of
    every other file under ``directory``."""
    directory = Path(directory)
    files = {
        p.relative_to(directory).as_posix(): p.stat().st_size
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MARKER and not p.name.startswith(".")
    }
    payload = {"key": key, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra,
               "files": files}
    write_text_atomic(directory / MARKER, json.dumps(payload, indent=2, default=str) + "\n")
