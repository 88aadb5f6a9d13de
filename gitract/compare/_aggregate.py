"""Run-level tables and ``summary.json`` from a run folder's finished steps."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gitract.compare._block_models import CAPACITY_FILE, IMPORTANCE_FILE, block_model_tables
from gitract.compare._environment import dataset_description
from gitract.compare._files import clean, write_csv, write_json
from gitract.compare._seeds import SEEDS_DIR, seed_statistics, seed_table
from gitract.compare._statistics import folder_statistics
from gitract.compare._steps import read_marker
from gitract.config import ExperimentConfig, config_from_dict


def _step_dirs(out: Path, config: ExperimentConfig) -> list[tuple[int, str, Path]]:
    splits = json.loads((out / "splits.json").read_text())
    dirs = []
    for k in range(len(splits["folds"])):
        for t in config.tracks:
            dirs.append((k, t.name, out / "steps" / f"fold{k}" / t.name / "eval"))
    return dirs


def best_per_step_set(candidates: pd.DataFrame) -> pd.DataFrame:
    """The run-level view of a step's volume-step sweep (``postprocess.csv``): per class,
    the best validation row of each combination of steps switched on (gate, z-range,
    components, threshold shift), and the chosen row. The step folder keeps every
    candidate; the run-level table stays small (a few dozen rows per class) however fine
    the candidate grids are.

    Examples
    --------
    >>> rows = pd.DataFrame({"class": "c", "threshold_shift": 0.0, "gate_cut": [0.0, 0.5, 0.7],
    ...                      "gate_area": 0.0, "z_margin": float("inf"),
    ...                      "component_fraction": 0.0, "score": [0.5, 0.6, 0.7],
    ...                      "chosen": [True, False, False]})
    >>> best_per_step_set(rows)[["gate_cut", "score", "chosen"]].values.tolist()
    [[0.0, 0.5, True], [0.7, 0.7, False]]
    >>> len(best_per_step_set(rows.assign(score=float("nan"))))  # no truth: first and chosen
    2
    """
    if candidates.empty or "score" not in candidates:
        return candidates
    on = {"_gate": (candidates["gate_cut"] > 0) | (candidates["gate_area"] > 0),
          "_z": np.isfinite(candidates["z_margin"]),
          "_components": candidates["component_fraction"] > 0,
          "_shift": candidates["threshold_shift"],
          # A NaN score (a class without truth on validation) ranks last.
          "_score": candidates["score"].fillna(-np.inf)}
    best = (candidates.assign(**on)
            .sort_values("_score", ascending=False, kind="stable")
            .drop_duplicates(["class", "_gate", "_z", "_components", "_shift"])
            .drop(columns=list(on)))
    chosen = candidates[candidates["chosen"].astype(bool)]
    return pd.concat([best, chosen]).drop_duplicates().sort_index()


def aggregate_run(out: Path, config: ExperimentConfig | None = None) -> dict:
    """Collect every step's outputs into run-level CSVs and ``summary.json`` (with the
    case-level bootstrap statistics of :mod:`gitract.compare._statistics`)."""
    out = Path(out)
    if config is None:
        raw = json.loads((out / "config.json").read_text())
        raw.pop("config_path", None)
        config = config_from_dict(raw)
    splits = json.loads((out / "splits.json").read_text())
    frames: dict[str, list[pd.DataFrame]] = {n: [] for n in (
        "per_slice", "per_case", "sweep", "postprocess", "calibration", "confusion", "empty",
        "localisation")}
    tracks: dict[str, Any] = {}
    curves: list[dict] = []
    for fold, name, d in _step_dirs(out, config):
        if not (d / "done.json").is_file():
            raise FileNotFoundError(f"{d}: step not finished; rerun the comparison to complete it")
        for n in frames:
            path = d / f"{n}.csv"
            if path.is_file() and path.stat().st_size > 1:
                try:
                    part = pd.read_csv(path)
                except pd.errors.EmptyDataError:
                    continue
                frames[n].append(best_per_step_set(part) if n == "postprocess" else part)
        m = json.loads((d / "metrics.json").read_text())
        # Fit time and training record come from the training step (a resumed run loads
        # the model).
        model_marker = read_marker(d.parent / "model") or {}
        m["fit_s"] = model_marker.get("fit_seconds", m.get("fit_s"))
        training = model_marker.get("training")
        if training:
            m["training"] = {k: v for k, v in training.items() if k != "curve"}
            for row in training.get("curve") or []:
                curves.append({"model": name, "fold": fold, **row})
        tracks.setdefault(name, []).append(m)
    for n, parts in frames.items():
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        name = {"per_slice": "metrics_per_slice", "per_case": "metrics_per_case"}.get(n, n)
        write_csv(out / f"{name}.csv", frame)
    write_csv(out / "training.csv", pd.DataFrame(
        curves, columns=None if curves else ["model", "fold", "epoch", "train_loss"]))
    blocks = [t.name for t in config.tracks if t.kind == "blocks"]
    if blocks:
        # Kept in the run folder: a copy without steps/ still reports on the models.
        importance, capacity = block_model_tables(out, blocks)
        write_csv(out / IMPORTANCE_FILE, importance)
        write_csv(out / CAPACITY_FILE, capacity)
    summary_tracks = {}
    kinds = {t.name: t.kind for t in config.tracks}
    params = {t.name: t.params for t in config.tracks}
    for name, folds in tracks.items():
        summary_tracks[name] = _summarise_folds(folds)
        summary_tracks[name]["kind"] = kinds[name]
        summary_tracks[name]["params"] = params[name]
    desc = dataset_description(config)
    summary = {
        "dataset": desc,
        "synthetic": desc["synthetic"],
        "split": splits,
        "conventions": tracks and next(iter(tracks.values()))[0].get("conventions"),
        "n_folds": len(splits["folds"]),
        "tracks": summary_tracks,
        "statistics": folder_statistics(out, summary_tracks, seed=config.seed),
    }
    if config.seeds and (out / SEEDS_DIR).is_dir():
        # The main run of several seeds: the mean and spread over seeds.
        summary["seeds"] = seed_statistics(out, config, list(summary_tracks))
        write_csv(out / "seeds.csv", seed_table(out, config, summary["seeds"], summary_tracks))
    write_json(out / "summary.json", clean(summary))
    return summary


_FOLD_KEYS = ("dice", "hausdorff", "score", "fit_s", "ms_per_slice", "model_bytes",
              "localisation_mm", "empty_fp_rate", "empty_fp_rate_before")


def _summarise_folds(folds: list[dict]) -> dict:
    """Mean over folds (and spread where there are several)."""
    def mean(values):
        vals = [v for v in values if v is not None and math.isfinite(v)]
        return float(np.mean(vals)) if vals else math.nan

    def std(values):
        vals = [v for v in values if v is not None and math.isfinite(v)]
        return float(np.std(vals)) if len(vals) > 1 else math.nan

    out: dict[str, Any] = {k: mean([f.get(k) for f in folds]) for k in _FOLD_KEYS}
    out["model_bytes"] = int(out["model_bytes"]) if math.isfinite(out["model_bytes"]) else None
    classes = list(folds[0]["per_class"])
    out["per_class"] = {
        c: {m: mean([f["per_class"][c].get(m) for f in folds]) for m in ("dice", "hausdorff", "score")}
        for c in classes
    }
    for c in classes:
        out["per_class"][c]["localisation_mm"] = mean(
            [f.get("localisation_mm_per_class", {}).get(c) for f in folds])
    if len(folds) > 1:
        out["std"] = {k: std([f.get(k) for f in folds]) for k in ("dice", "hausdorff", "score")}
    out["folds"] = [{k: f.get(k) for k in (*_FOLD_KEYS, "test_cases", "val_cases", "tuning",
                                           "validation", "postprocess", "postprocess_validation",
                                           "training", "stages")}
                    for f in folds]
    return out
