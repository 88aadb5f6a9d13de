"""Which folder a run may write: new, empty, or a run folder of the same config.

A run resumes in its own folder; a folder holding anything else (the user's files, another
kind of output) is refused unless ``force``, and so is a run folder whose config differs
from the one being run (the keys that differ are named). Where the work runs
(``parallel``) and where the config file lies (``config_path``) are not compared: they
do not change the numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gitract.compare._files import _json_default
from gitract.config import ExperimentConfig
from gitract.utils.outputs import (
    OutputFolder,
    OutputFolderError,
    check_output_folder,
    describe_entries,
)

__all__ = ["RUN_FILES", "check_run_folder", "comparable_config", "config_differences",
           "forced_note"]

#: The entries a run writes at the top of its folder.
RUN_FILES = ("config.json", "env.json", "splits.json", "examples.json", "log.txt", "steps",
             "metrics_per_slice.csv", "metrics_per_case.csv", "sweep.csv", "postprocess.csv",
             "calibration.csv", "importance.csv", "capacity.csv",
             "confusion.csv", "empty.csv", "localisation.csv", "training.csv", "summary.json",
             "report.md", "figures", "curve", "learning_curve.csv", "final",
             "seeds", "seeds.csv")

_NOT_COMPARED = ("config_path", "parallel")


def _read_config(folder: Path) -> dict | None:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _is_run_folder(folder: Path) -> bool:
    """A run folder written before run folders carried a marker: its ``config.json`` is a
    run config and its ``splits.json`` or ``env.json`` is there."""
    config = _read_config(folder)
    return (config is not None and {"name", "tracks", "split"} <= set(config)
            and any((folder / f).is_file() for f in ("splits.json", "env.json")))


def comparable_config(config: dict) -> Any:
    """``config`` as JSON would store it, without the keys that do not change numbers; the
    tracks keyed by name, so a difference names its track."""
    config = json.loads(json.dumps(config, default=_json_default))
    config = {k: v for k, v in config.items() if k not in _NOT_COMPARED}
    tracks = config.get("tracks")
    if isinstance(tracks, list) and all(isinstance(t, dict) and "name" in t for t in tracks):
        config["tracks"] = {t["name"]: {k: v for k, v in t.items() if k != "name"}
                            for t in tracks}
    return config


def config_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like configs (``+key`` only in
    ``new``, ``-key`` only in ``old``).

    A key only in ``new`` whose value is empty (``None``, ``[]``, ``{}``) is no difference:
    a later version added the setting, and its empty value means what its absence meant
    (``data.exclude: []`` excludes nothing)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                if new[key] not in (None, [], {}):
                    out.append(f"+{path}")
            elif key not in new:
                out.append(f"-{path}")
            else:
                out.extend(config_differences(old[key], new[key], path))
        return out
    return [] if old == new else [prefix or "(the whole config)"]


def check_run_folder(out_dir: str | Path, config: ExperimentConfig, *, command: str,
                     force: bool = False) -> OutputFolder:
    """Check before any work that a run of ``config`` may write ``out_dir``.

    Raises
    ------
    OutputFolderError
        When the folder holds files of something else, or is a run of another config (the
        differing keys named), and ``force`` is False.
    """
    folder = check_output_folder(out_dir, kind="run", command=command, force=force,
                                 written_before=_is_run_folder, writes=RUN_FILES)
    old = _read_config(folder.path) if folder.status in ("ours", "forced") else None
    if old is None:
        return folder
    differences = config_differences(comparable_config(old), comparable_config(config.to_dict()))
    if not differences:
        return folder
    named = describe_entries(differences, limit=8)
    if not force:
        raise OutputFolderError(
            f"{folder.path}: is a run of another config (name {old.get('name')!r}; keys that "
            f"differ: {named}); choose another --out, or pass --force to resume it with "
            "this config (steps whose settings changed are recomputed)")
    folder.status = "forced"
    folder.replaced = sorted(set(folder.replaced) | {"config.json"})
    return folder


def forced_note(folder: OutputFolder) -> str | None:
    """The log line of a forced run, or None."""
    if folder.status != "forced":
        return None
    return (f"--force: running into {folder.path}, which held another config's run or other "
            f"files; replaced where present: {describe_entries(folder.replaced) or 'nothing'}")

