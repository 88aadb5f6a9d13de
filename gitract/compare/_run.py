"""Run every track of a config on one case-grouped split, caching each finished step.

Layout of a run folder::

    config.json env.json splits.json examples.json log.txt
    steps/fold<k>/<track>/model/       trained model and its ``done.json``
    steps/fold<k>/<track>/eval/        metrics.json predictions.csv per_slice.csv per_case.csv
                                       sweep.csv calibration.csv confusion.csv empty.csv
                                       localisation.csv examples.npz done.json
    metrics_per_slice.csv metrics_per_case.csv sweep.csv calibration.csv confusion.csv
    empty.csv localisation.csv training.csv summary.json report.md figures/*.png

``steps/`` is the run's cache (git ignores it); everything a reader needs sits at the top
of the folder. A step is skipped only when its ``done.json`` holds the same key (a hash of
everything it depends on) and every file it lists is there (:mod:`gitract.compare._steps`),
so an interrupted run resumes where it stopped, a changed setting recomputes only the
steps that depend on it (a changed metric convention re-evaluates without retraining), and
a step whose files are gone is computed again with a log line saying why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gitract.compare._steps import mark_done, read_marker, step_status
from gitract.config import ExperimentConfig
from gitract.data.record import SliceStack
from gitract.utils._random import derive_seeds, seed_everything
from gitract.utils.io import atomic_path, write_text_atomic

log = logging.getLogger("gitract.compare")

SYNTHETIC_KINDS = ("phantom",)


class RunInterrupted(RuntimeError):
    """Raised by ``stop_after`` (tests) to cut a run short between steps."""


def _hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _clean(o):
    """NaN -> None recursively, so JSON stays standard."""
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (float, np.floating)) and not math.isfinite(float(o)):
        return None
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return o


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


# ------------------------------------------------------------------------ environment
def environment_info() -> dict[str, Any]:
    """Package versions, git SHA and the machine (CPU / GPU) for ``env.json``."""
    from importlib import metadata

    versions = {}
    for pkg in ("gitract", "numpy", "pandas", "scipy", "scikit-learn", "scikit-image",
                "lightgbm", "torch", "joblib", "matplotlib"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None
    except OSError:
        sha = None
    device = "cpu"
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            device = "cuda"
            gpu = torch.cuda.get_device_name(0)
        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        threads = None
    import os

    return {
        "versions": versions,
        "git_sha": sha,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "device": device,
        "gpu": gpu,
    }


# ------------------------------------------------------------------------------ data
def dataset_description(config: ExperimentConfig) -> dict[str, Any]:
    data = config.data
    return {
        "kind": data.kind,
        "path": data.path,
        "phantom": dict(data.phantom),
        "options": dict(data.options),
        "max_cases": data.max_cases,
        "slice_step": data.slice_step,
        "synthetic": data.kind in SYNTHETIC_KINDS,
    }


def load_stacks(config: ExperimentConfig) -> list[SliceStack]:
    """The labelled stacks a run uses (the phantom is generated once into the cache)."""
    from gitract.data.loaders import load_dataset
    from gitract.paths import cache_dir

    data = config.data
    kwargs = dict(data.options)
    path = data.path
    if data.kind == "phantom":
        from gitract.data.phantom import PhantomConfig

        phantom = PhantomConfig(**data.phantom)
        kwargs["config"] = phantom
        if path is None:
            path = str(cache_dir() / f"phantom-{_hash(asdict(phantom))}")
    stacks = load_dataset(data.kind, path, **kwargs)
    stacks = [s for s in stacks if s.masks is not None]
    if not stacks:
        raise ValueError(f"dataset {data.kind!r} at {path!r} holds no labelled stacks")
    if data.slice_step > 1:
        stacks = [s.subset(slice(None, None, data.slice_step)) for s in stacks]
    if data.max_cases is not None:
        keep = sorted({s.case for s in stacks}, key=_natural)[: data.max_cases]
        stacks = [s for s in stacks if s.case in keep]
    return stacks


def _natural(text: str):
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def make_folds(config: ExperimentConfig, cases: Sequence[str]) -> tuple[dict, list]:
    """The split (saved as ``splits.json``) and its folds as ``(train, val, test)`` lists."""
    from gitract.data.splits import make_case_splits
    from gitract.evaluation import case_folds

    split = config.split
    cases = sorted(set(cases), key=_natural)
    if split.cross_validate:
        folds = case_folds(cases, n_folds=split.n_folds, n_val=1, random_state=config.seed)
        splits = {
            "scheme": f"case-grouped {split.n_folds}-fold cross-validation (every case tested once;"
            " one training case per fold validates the thresholds)",
            "cases": cases,
            "folds": [{"train": t, "val": v, "test": te} for t, v, te in folds],
            "seed": config.seed,
        }
        return splits, [(list(t), list(v), list(te)) for t, v, te in folds]
    raw = make_case_splits(
        cases, n_folds=split.n_folds, n_test=split.n_test, test_fraction=split.test_fraction,
        val_fraction=split.val_fraction, random_state=config.seed,
    )
    fold = raw["folds"][0]
    splits = {
        "scheme": "case-grouped held-out test cases; training cases split into train/val"
        " (thresholds tuned on val)",
        "cases": cases,
        "folds": [{"train": list(fold["train"]), "val": list(fold["val"]), "test": list(raw["test"])}],
        "seed": config.seed,
    }
    return splits, [(list(fold["train"]), list(fold["val"]), list(raw["test"]))]


def choose_example_slices(stacks: Sequence[SliceStack], n: int) -> list[str]:
    """Slice ids for the probability-map figures: the most classes present, then the most
    organ pixels, at most one per stack first (deterministic)."""
    rows = []
    for stack in stacks:
        present = stack.masks.any(axis=(1, 2))
        area = stack.masks.sum(axis=(1, 2, 3))
        for s in range(stack.n_slices):
            rows.append((int(present[s].sum()), int(area[s]), stack.key, stack.ids[s]))
    rows.sort(key=lambda r: (-r[0], -r[1], r[3]))
    chosen, used = [], set()
    for r in rows:
        if r[2] not in used and r[0] > 0:
            chosen.append(r[3])
            used.add(r[2])
        if len(chosen) == n:
            return chosen
    for r in rows:
        if r[3] not in chosen and r[0] > 0:
            chosen.append(r[3])
        if len(chosen) == n:
            break
    return chosen


# --------------------------------------------------------------------------- the run
def run_comparison(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    stop_after: int | None = None,
    progress: bool = True,
    report: bool = True,
    config_path: str | None = None,
) -> Path:
    """Train, tune and score every track of ``config``; write the run folder and report.

    Parameters
    ----------
    config : ExperimentConfig
    out_dir : path
        Run folder; finished steps found there are reused (resume).
    stop_after : int, optional
        Raise :class:`RunInterrupted` after this many steps were computed (tests).
    progress : bool
        Show progress bars.
    report : bool
        Build ``report.md`` and figures at the end.

    Returns
    -------
    Path
        The run folder.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        seed_everything(config.seed)
        if config.deterministic:
            import torch

            torch.use_deterministic_algorithms(True, warn_only=True)
        log.info("run %s: config %s -> %s", config.name, config_path, out)
        resolved = config.to_dict()
        _write_json(out / "config.json", {"config_path": config_path, **resolved})
        _write_json(out / "env.json", {**environment_info(), "deterministic": config.deterministic,
                                       "seed": config.seed})
        stacks = load_stacks(config)
        by_case: dict[str, list[SliceStack]] = {}
        for s in stacks:
            by_case.setdefault(s.case, []).append(s)
        log.info("loaded %d stacks, %d cases, %d slices", len(stacks), len(by_case),
                 sum(s.n_slices for s in stacks))
        splits, folds = make_folds(config, list(by_case))
        splits["dataset"] = dataset_description(config)
        _write_json(out / "splits.json", splits)
        data_key = _hash({"data": dataset_description(config), "splits": splits["folds"],
                          "seed": config.seed})
        conventions = _conventions(config)
        fold0_test = [s for c in folds[0][2] for s in by_case[c]]
        examples = choose_example_slices(fold0_test, config.report.n_example_slices)
        _write_json(out / "examples.json", {"fold": 0, "ids": examples})

        # One derived seed for every track: block tracks then sample the same training
        # blocks (a like-for-like comparison, and RF / LightGBM share cached features).
        track_seed = derive_seeds(config.seed, 1)[0]
        cache: dict = {}
        steps = [(k, i, t) for k, _ in enumerate(folds) for i, t in enumerate(config.tracks)]
        computed = 0
        bar = tqdm(steps, desc="tracks", disable=not progress, unit="step")
        for fold_index, _, track in bar:
            bar.set_postfix_str(f"fold {fold_index} {track.name}")
            train_c, val_c, test_c = folds[fold_index]
            pick = lambda cs: [s for c in cs for s in by_case[c]]  # noqa: E731
            step_dir = out / "steps" / f"fold{fold_index}" / track.name
            model_key = _hash({"data": data_key, "fold": fold_index, "kind": track.kind,
                               "params": track.params, "seed": track_seed})
            eval_key = _hash({"model": model_key, "conventions": repr(conventions),
                              "min_sizes": list(config.min_sizes),
                              "examples": examples, "report": asdict(config.report),
                              "version": 2})
            done, why = step_status(step_dir / "eval", eval_key)
            if done:
                log.info("fold %d %s: cached, skipped", fold_index, track.name)
                continue
            log.info("fold %d %s: evaluating (%s)", fold_index, track.name, why)
            adapter = _fit_or_load(track, step_dir / "model", model_key, track_seed,
                                   pick(train_c), pick(val_c), cache)
            _evaluate(adapter, track.name, fold_index, pick(val_c), pick(test_c),
                      step_dir / "eval", eval_key, conventions, examples,
                      config.report.calibration_bins, config.min_sizes)
            computed += 1
            if stop_after is not None and computed >= stop_after:
                raise RunInterrupted(f"stopped after {computed} steps (stop_after)")
        aggregate_run(out, config)
        if report:
            from gitract.compare._report import build_report

            build_report(out)
        log.info("run finished: %s", out)
        return out
    finally:
        log.removeHandler(handler)
        handler.close()


def _conventions(config: ExperimentConfig):
    from gitract.metrics import MetricConventions

    return MetricConventions(**config.metrics) if config.metrics else MetricConventions()


def _fit_or_load(track, directory: Path, key: str, seed: int, train, val, cache=None):
    from gitract.compare._tracks import make_track

    adapter = make_track(track.kind, track.params, random_state=seed, cache=cache)
    done, why = step_status(directory, key)
    if done:
        log.info("%s: trained model cached, loading %s", track.name, directory)
        return adapter.load(directory)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    log.info("%s: training on %d stacks (%d slices) (%s)", track.name, len(train),
             sum(s.n_slices for s in train), why)
    adapter.fit(train, val)
    adapter.save(directory)
    mark_done(directory, key, fit_seconds=adapter.fit_seconds, training=adapter.training)
    log.info("%s: trained in %.1f s", track.name, adapter.fit_seconds)
    training = adapter.training
    if training and training.get("stopped") == "max_minutes":
        log.warning("%s: the time guard (max_minutes) stopped training after %d steps; "
                    "this track's numbers depend on the machine's speed", track.name,
                    training.get("steps", 0))
    return adapter


def _evaluate(adapter, name, fold, val, test, directory: Path, key, conventions, examples, bins,
              min_sizes=(0,)):
    from gitract.compare import _analysis as A
    from gitract.data.kaggle import stacks_to_rle_frame
    from gitract.metrics import score_stacks
    from gitract.postprocessing import ThresholdTuning, tune_thresholds

    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    classes = test[0].classes
    if val:
        val_proba = adapter.predict_proba(val)
        # Thresholds come from validation stacks only; test stacks never reach the sweep.
        tuning = tune_thresholds(val_proba, val, min_sizes=min_sizes, conventions=conventions)
    else:
        tuning = ThresholdTuning.fixed(classes)
    test_proba = adapter.predict_proba(test)
    masks = {k: tuning.apply(p) for k, p in test_proba.items()}
    result = score_stacks(test, masks, conventions=conventions)
    tag = {"model": name, "fold": fold}
    _write_csv(directory / "per_slice.csv", result.per_slice.assign(**tag))
    _write_csv(directory / "per_case.csv", result.per_case.assign(**tag))
    sweep = tuning.sweep if tuning.sweep is not None else pd.DataFrame()
    _write_csv(directory / "sweep.csv", sweep.assign(**tag))
    _write_csv(directory / "predictions.csv",
               stacks_to_rle_frame(test, masks, column="predicted"))
    _write_csv(directory / "calibration.csv", A.calibration(test, test_proba, n_bins=bins).assign(**tag))
    _write_csv(directory / "confusion.csv", A.block_confusion(test, masks).assign(**tag))
    empty = A.empty_slice_behaviour(test, masks)
    _write_csv(directory / "empty.csv", empty.assign(**tag))
    loc = A.localisation_errors(test, masks)
    _write_csv(directory / "localisation.csv", loc.assign(**tag))
    ex = {}
    image_of = None
    for stack in test:
        for s, sid in enumerate(stack.ids):
            if sid in examples:
                if image_of is None:
                    from gitract.evaluation import normalize_stack

                    image_of = {}
                if stack.key not in image_of:
                    image_of[stack.key] = normalize_stack(stack)
                # The figure needs nothing else: the report never reloads the dataset.
                ex[f"proba__{sid}"] = test_proba[stack.key][s].astype(np.float16)
                ex[f"image__{sid}"] = image_of[stack.key][s].astype(np.float16)
                ex[f"truth__{sid}"] = stack.masks[s]
    if ex:
        with atomic_path(directory / "examples.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **ex)
    metrics = {
        **result.to_dict(),
        "fit_s": adapter.fit_seconds,
        "ms_per_slice": test_proba.ms_per_slice,
        "model_bytes": adapter.model_bytes,
        "localisation_mm": A.mean_or_nan(loc["distance_mm"]),
        "localisation_mm_per_class": {c: A.mean_or_nan(loc.loc[loc["class"] == c, "distance_mm"])
                                      for c in classes},
        "empty_fp_rate": A.empty_fp_rate(empty),
        "tuning": tuning.to_dict(),
        "n_test_slices": int(sum(s.n_slices for s in test)),
        "test_cases": sorted({s.case for s in test}),
    }
    _write_json(directory / "metrics.json", _clean(metrics))
    mark_done(directory, key)
    log.info("fold %d %s: dice %.3f hausdorff %.3f score %.3f (%.0f ms/slice)", fold, name,
             result.dice, result.hausdorff, result.score, test_proba.ms_per_slice)


# ----------------------------------------------------------------------- aggregation
def _step_dirs(out: Path, config: ExperimentConfig) -> list[tuple[int, str, Path]]:
    splits = json.loads((out / "splits.json").read_text())
    dirs = []
    for k in range(len(splits["folds"])):
        for t in config.tracks:
            dirs.append((k, t.name, out / "steps" / f"fold{k}" / t.name / "eval"))
    return dirs


def aggregate_run(out: Path, config: ExperimentConfig | None = None) -> dict:
    """Collect every step's outputs into run-level CSVs and ``summary.json``."""
    from gitract.config import config_from_dict

    out = Path(out)
    if config is None:
        raw = json.loads((out / "config.json").read_text())
        raw.pop("config_path", None)
        config = config_from_dict(raw)
    splits = json.loads((out / "splits.json").read_text())
    frames: dict[str, list[pd.DataFrame]] = {n: [] for n in (
        "per_slice", "per_case", "sweep", "calibration", "confusion", "empty", "localisation")}
    tracks: dict[str, Any] = {}
    curves: list[dict] = []
    for fold, name, d in _step_dirs(out, config):
        if not (d / "done.json").is_file():
            raise FileNotFoundError(f"{d}: step not finished; rerun the comparison to complete it")
        for n in frames:
            path = d / f"{n}.csv"
            if path.is_file() and path.stat().st_size > 1:
                try:
                    frames[n].append(pd.read_csv(path))
                except pd.errors.EmptyDataError:
                    pass
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
        _write_csv(out / f"{name}.csv", frame)
    _write_csv(out / "training.csv", pd.DataFrame(
        curves, columns=None if curves else ["model", "fold", "epoch", "train_loss"]))
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
    }
    _write_json(out / "summary.json", _clean(summary))
    return summary


_FOLD_KEYS = ("dice", "hausdorff", "score", "fit_s", "ms_per_slice", "model_bytes",
              "localisation_mm", "empty_fp_rate")


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
    out["folds"] = [{k: f.get(k) for k in (*_FOLD_KEYS, "test_cases", "tuning", "training")}
                    for f in folds]
    return out


def resolve_out_dir(config: ExperimentConfig, out: str | Path | None) -> Path:
    """``--out`` or ``reports/<config name>``."""
    from gitract.paths import reports_dir

    return Path(out) if out is not None else reports_dir() / config.name


ProgressHook = Callable[[str], None]
