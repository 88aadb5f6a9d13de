"""Run every track of a config on one case-grouped split, caching each finished step.

One path for every track: index the data -> split by case -> ``fit`` -> probabilities per
scan -> tune on validation -> score -> aggregate -> report. Scans are read when a stage
needs them and dropped after (:mod:`gitract.compare._scan_eval`); per-scan stages run
through joblib, or on a Dask cluster (:mod:`gitract.utils.parallel`).

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
a step whose files are gone is computed again with a log line saying why. Where the work
runs (``parallel``) is not part of any key: it does not change the numbers.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from gitract.compare._aggregate import aggregate_run
from gitract.compare._environment import dataset_description, environment_info
from gitract.compare._files import hash_key, write_csv, write_json
from gitract.compare._final import score_holdout
from gitract.compare._learning_curve import CURVE_DIR, curve_plan, curve_runs, curve_table
from gitract.compare._report import build_report
from gitract.compare._run_folder import check_run_folder, forced_note
from gitract.compare._scan_eval import example_candidates
from gitract.compare._seeds import SEEDS_DIR, extra_seeds
from gitract.compare._step_eval import evaluate_step
from gitract.compare._steps import mark_done, step_status
from gitract.config import DataConfig, ExperimentConfig, check_devices
from gitract.data.index import DatasetIndex, index_dataset, natural_key
from gitract.data.phantom import PhantomConfig
from gitract.data.record import DataError, SliceStack
from gitract.data.splits import case_folds, choose_holdout, make_case_splits
from gitract.metrics import MetricConventions
from gitract.paths import cache_dir, reports_dir
from gitract.tracks import TUNING_KEYS, make_adapter, model_rules
from gitract.utils import derive_seeds, seed_everything
from gitract.utils.memory import release_memory
from gitract.utils.parallel import (
    ParallelConfig,
    map_scans,
    parallel_session,
    scheduler_problem,
)
from gitract.utils.progress import progress_bar, progress_bars

log = logging.getLogger("gitract.compare")

__all__ = ["RunInterrupted", "aggregate_run", "load_index", "load_stacks", "make_folds",
           "prepare_run", "resolve_out_dir", "run_comparison"]


class RunInterrupted(RuntimeError):
    """Raised by ``stop_after`` (tests) to cut a run short between steps."""


# ------------------------------------------------------------------------------ data
def data_path(data: DataConfig) -> str | None:
    """The folder a run reads: ``data.path`` as given (a relative path is read from the
    working folder), or the phantom's own cache folder (one per phantom setting); None
    for a kind that reads its default place."""
    if data.kind == "phantom" and data.path is None:
        return str(cache_dir() / f"phantom-{hash_key(asdict(PhantomConfig(**data.phantom)))}")
    return data.path


def load_index(config: ExperimentConfig) -> DatasetIndex:
    """The index of the labelled scans a run uses (the phantom is generated once into the
    cache; ``data.cache_scans`` keeps decoded Kaggle-layout scans there too); a dataset
    without masks (no ``train.csv``) raises :class:`DataError` naming its folder."""
    data = config.data
    kwargs = dict(data.options)
    path = data_path(data)
    if path is not None and data.kind != "phantom" and not Path(path).exists():
        where = ("" if Path(path).is_absolute() else
                 f", a relative path read from the working folder {Path.cwd()}, not from the "
                 "config file's folder")
        raise DataError(f"{path}: dataset folder does not exist (data.path{where})")
    if data.kind == "phantom":
        kwargs["config"] = PhantomConfig(**data.phantom)
    scan_cache = cache_dir() / "decoded" if data.cache_scans else None
    index = index_dataset(data.kind, path, cache_dir=scan_cache, **kwargs)
    if not index.scans:
        raise ValueError(f"dataset {data.kind!r} at {path!r} holds no scans")
    if not index.labelled:  # training and scoring need masks: say so before any work
        if data.kind in ("kaggle", "phantom"):
            raise DataError(f"{path}: train.csv is missing (training and scoring need its "
                            "masks; a Kaggle-layout folder holds train.csv next to train/)")
        raise DataError(f"{path}: holds no masks (training and scoring need them)")
    return index.restrict(max_cases=data.max_cases, slice_step=data.slice_step,
                         exclude=data.exclude)


def load_stacks(config: ExperimentConfig) -> list[SliceStack]:
    """Every labelled stack of the run's dataset, read at once (tests and notebooks; the
    run itself reads scan by scan)."""
    index = load_index(config)
    return [s for s in (index.read(k) for k in index.keys()) if s.masks is not None]


def make_folds(config: ExperimentConfig, cases: Sequence[str]) -> tuple[dict, list]:
    """The split (saved as ``splits.json``) and its folds as ``(train, val, test)`` lists.

    A split with no test case (``n_test: 0``) is a training run: every fold trains and
    tunes thresholds on validation cases; nothing is scored.
    """
    split = config.split
    cases = sorted(set(cases), key=natural_key)
    # The locked hold-out leaves before any fold is made: no step ever sees it.
    holdout = choose_holdout(cases, split.holdout, random_state=config.seed)
    if holdout:
        splits, folds = make_folds(replace(config, split=replace(split, holdout=None)),
                                   [c for c in cases if c not in set(holdout)])
        return {**splits, "holdout": holdout}, folds
    if split.cross_validate:
        n_val = 1 if split.n_val is None else split.n_val
        folds = case_folds(cases, n_folds=split.n_folds, n_val=n_val, random_state=config.seed)
        splits = {
            "scheme": f"case-grouped {split.n_folds}-fold cross-validation (every case tested once;"
            f" {n_val} training case(s) per fold validate the thresholds)",
            "cases": cases,
            "folds": [{"train": t, "val": v, "test": te} for t, v, te in folds],
            "seed": config.seed,
        }
        return splits, [(list(t), list(v), list(te)) for t, v, te in folds]
    raw = make_case_splits(
        cases, n_folds=split.n_folds, n_test=split.n_test, test_fraction=split.test_fraction,
        val_fraction=split.val_fraction, n_val=split.n_val, random_state=config.seed,
    )
    fold = raw["folds"][0]
    scheme = ("case-grouped held-out test cases; training cases split into train/val"
              " (thresholds tuned on val)") if raw["test"] else (
        "training run: case-grouped train/val split, no test cases (thresholds tuned on val;"
        " nothing scored)")
    splits = {
        "scheme": scheme,
        "cases": cases,
        "folds": [{"train": list(fold["train"]), "val": list(fold["val"]), "test": list(raw["test"])}],
        "seed": config.seed,
    }
    return splits, [(list(fold["train"]), list(fold["val"]), list(raw["test"]))]


def choose_example_slices(index: DatasetIndex, keys: Sequence[str], n: int,
                          parallel: ParallelConfig) -> list[str]:
    """Slice ids for the probability-map figures: the most classes present, then the most
    organ pixels, at most one per stack first (deterministic)."""
    rows = [r for part in map_scans(example_candidates, [index.source(k) for k in keys],
                                    parallel=parallel, desc="example slices") for r in part]
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
    parallel: ParallelConfig | None = None,
    index: DatasetIndex | None = None,
    force: bool = False,
    command: str = "gitract compare",
    final: bool = False,
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
        Progress bars on long loops (drawn on a terminal or in a notebook only).
    report : bool
        Build ``report.md`` and figures at the end.
    parallel : ParallelConfig, optional
        Where per-scan stages run (default ``config.parallel``).
    index : DatasetIndex, optional
        ``load_index(config)`` when the caller has already built it.
    force : bool
        Write into a folder that is not new, empty or a run of the same config (see
        :mod:`gitract.compare._run_folder`); without it such a folder is refused before any
        data is read.
    command : str
        The command named in messages and in the folder's marker.
    final : bool
        Then score the locked hold-out (``split.holdout``) into ``final/``
        (:mod:`gitract.compare._final`); refused when the hold-out was scored before with
        other settings, unless ``force``.

    Returns
    -------
    Path
        The run folder.
    """
    parallel = config.parallel if parallel is None else parallel
    # One derived seed for every track: block tracks then sample the same training
    # blocks (a like-for-like comparison).
    track_seed = derive_seeds(config.seed, 1)[0]
    source = config_path or "config"
    if final and config.split.holdout is None:
        raise DataError(f"{source}: split.holdout is not set: --final has no locked hold-out "
                        "to score")
    folder = check_run_folder(out_dir, config, command=command, force=force)
    with progress_bars(progress):
        # Everything that can fail on the config or the data's layout fails here, before
        # the run folder exists.
        index, splits, folds = prepare_run(config, source, track_seed, index=index)
        if parallel.backend == "dask" and parallel.scheduler:
            problem = scheduler_problem(parallel.scheduler)  # a short timeout
            if problem is not None:
                raise DataError(f"parallel.scheduler: {problem}")
        out = folder.create(config=config.name)
        handler = logging.FileHandler(out / "log.txt")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(min(logging.INFO, logging.getLogger("gitract").getEffectiveLevel()))
        try:
            seed_everything(config.seed)
            if config.deterministic:
                import torch

                torch.use_deterministic_algorithms(True, warn_only=True)
            log.info("run %s: config %s -> %s (%s)", config.name, config_path, out,
                     _where(parallel))
            if forced_note(folder):
                log.warning(forced_note(folder))
            write_json(out / "config.json", {"config_path": config_path, **config.to_dict()})
            write_json(out / "env.json", {**environment_info(),
                                          "deterministic": config.deterministic,
                                          "seed": config.seed, "data": index.fingerprint(),
                                          "parallel": asdict(parallel)})
            log.info("indexed %d scans, %d cases, %d slices", len(index.scans),
                     len(index.cases()), index.n_slices)
            _log_split(splits)
            write_json(out / "splits.json", splits)
            _run_steps(config, out, index, splits, folds, track_seed, parallel, stop_after)
            _run_seeds(config, out, index, splits, folds, parallel, stop_after)
            aggregate_run(out, config)
            _run_curve(config, out, index, splits, folds, track_seed, parallel, stop_after)
            if final:
                with parallel_session(parallel):
                    score_holdout(config, out, index, splits, folds, track_seed, parallel,
                                  _conventions(config), force=force)
            if report:
                build_report(out)
            log.info("run finished: %s", out)
            return out
        except KeyboardInterrupt:
            log.info("interrupted; finished steps are kept: run the same command to resume",
                     extra={"file_only": True})
            raise
        except Exception as exc:
            log.error("failed: %s: %s", type(exc).__name__, exc, extra={"file_only": True})
            raise
        finally:
            log.removeHandler(handler)
            handler.close()


def prepare_run(config: ExperimentConfig, source: str, track_seed: int, *,
                index: DatasetIndex | None = None) -> tuple[DatasetIndex, dict, list]:
    """Check the metric conventions, index the data and make the split, before a run
    writes anything; a problem raises :class:`DataError` naming ``source`` (the config
    file) and the section. (The tracks' parameters were parsed and checked with the
    config: :class:`~gitract.config.TrackConfig`.)"""
    check_devices(config, where=source)  # cuda / mps present, before any work
    try:
        MetricConventions.from_mapping(config.metrics)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: metrics: {exc}") from None
    try:
        index = load_index(config) if index is None else index
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(f"{source}: data: {exc}") from None
    try:
        splits, folds = make_folds(config, index.cases())
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: split: {exc} ({len(index.cases())} cases)") from None
    splits["dataset"] = dataset_description(config)
    splits["excluded"] = {k: list(v) for k, v in index.excluded.items()}
    tested = {c for _, _, test in folds for c in test}
    splits["untested"] = [c for c in splits["cases"] if c not in tested]
    splits["train_slices"] = _train_slices(index, folds)
    if config.learning_curve is not None:
        try:
            splits["learning_curve"] = curve_plan(folds, config.learning_curve.train_cases,
                                                  config.seed)
        except ValueError as exc:
            raise DataError(f"{source}: {exc}") from None
    return index, splits, folds


def _train_slices(index: DatasetIndex, folds) -> list[int]:
    """Per fold, the number of training slices."""
    return [sum(index.ref(k).n_slices for k in index.keys_of(train)) for train, _, _ in folds]


def _run_steps(config, out, index, splits, folds, track_seed, parallel, stop_after) -> None:
    """Every (fold, track) step not already finished: fit (or load), tune, score."""
    data_key = hash_key({"data": dataset_description(config), "splits": splits["folds"],
                         "seed": config.seed})
    conventions = _conventions(config)
    with parallel_session(parallel):
        examples = choose_example_slices(index, index.keys_of(folds[0][2]),
                                         config.report.n_example_slices, parallel)
        write_json(out / "examples.json", {"fold": 0, "ids": examples})
        steps = [(k, t) for k, _ in enumerate(folds) for t in config.tracks]
        computed = 0
        trained: dict[str, Path] = {}  # model key -> folder of a model trained in this run
        bar = progress_bar(steps, desc="tracks", unit="step")
        for fold_index, track in bar:
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(f"fold {fold_index} {track.name}")
            train_c, val_c, test_c = folds[fold_index]
            step_dir = out / "steps" / f"fold{fold_index}" / track.name
            # The tuning keys choose thresholds and volume steps, not the model: tracks that
            # differ only there share one trained model (see _fit_or_load). A kind's rules
            # (its checkpoint's criterion) enter the key where it states them.
            rules = model_rules(track.kind)
            model_key = hash_key({"data": data_key, "fold": fold_index, "kind": track.kind,
                                  "params": {k: v for k, v in track.params.items()
                                             if k not in TUNING_KEYS},
                                  "seed": track_seed, **({"rules": rules} if rules else {})})
            tuning = track.tuning.options(config.min_sizes)
            eval_key = hash_key({"model": model_key, "conventions": repr(conventions),
                                 "tuning": tuning, "examples": examples,
                                 "report": asdict(config.report), "version": 4})
            done, why = step_status(step_dir / "eval", eval_key)
            if done:
                log.info("fold %d %s: cached, skipped", fold_index, track.name)
                continue
            log.info("fold %d %s: evaluating (%s)", fold_index, track.name, why)
            adapter = _fit_or_load(track, step_dir / "model", model_key, track_seed, index,
                                   index.keys_of(train_c), index.keys_of(val_c), parallel,
                                   trained=trained)
            trained.setdefault(model_key, step_dir / "model")
            evaluate_step(adapter, track.name, fold_index, index, index.keys_of(val_c),
                          index.keys_of(test_c), step_dir / "eval", eval_key, conventions,
                          examples, config.report.calibration_bins, tuning, parallel,
                          train_keys=index.keys_of(train_c))
            del adapter  # the next track starts from the memory this one held
            release_memory()
            computed += 1
            if stop_after is not None and computed >= stop_after:
                raise RunInterrupted(f"stopped after {computed} steps (stop_after)")


def _run_seeds(config, out, index, splits, folds, parallel, stop_after) -> None:
    """Each extra training seed (``seeds``) as a run of its own under ``seeds/s<seed>/``:
    the same split and steps, the track seed derived from that seed (as the main run's is
    from ``seed``)."""
    for seed in extra_seeds(config):
        sub = out / SEEDS_DIR / f"s{seed}"
        sub.mkdir(parents=True, exist_ok=True)
        write_json(sub / "splits.json", splits)
        log.info("seed %d: every track trained again on the same split", seed)
        _run_steps(config, sub, index, splits, folds, derive_seeds(seed, 1)[0], parallel,
                   stop_after)
        aggregate_run(sub, replace(config, seeds=()))


def _run_curve(config, out, index, splits, folds, track_seed, parallel, stop_after) -> None:
    """Each training size of the data-regime curve as a run of its own under
    ``curve/n<size>/`` (same engine, same steps, same resume), then ``learning_curve.csv``."""
    if not splits.get("learning_curve"):
        return
    for size, sub_splits, sub_folds in curve_runs(splits, folds):
        sub = out / CURVE_DIR / f"n{size}"
        sub.mkdir(parents=True, exist_ok=True)
        sub_splits["train_slices"] = _train_slices(index, sub_folds)
        write_json(sub / "splits.json", sub_splits)
        log.info("learning curve: %d training case(s) per fold", size)
        _run_steps(config, sub, index, sub_splits, sub_folds, track_seed, parallel, stop_after)
        aggregate_run(sub, config)
    write_csv(out / "learning_curve.csv", curve_table(out))


def _log_split(splits: dict) -> None:
    """Say which cases the split never tests and what ``data.exclude`` dropped."""
    untested, n = splits.get("untested", []), len(splits["cases"])
    if untested:
        log.info("%d of %d cases are never tested (%s): %s", len(untested), n,
                    splits["scheme"], ", ".join(untested))
    else:
        log.info("every one of the %d cases is tested", n)
    for name, keys in splits.get("excluded", {}).items():
        if keys:
            log.info("data.exclude %s: %d scan(s) left out (%s)", name, len(keys), ", ".join(keys))
        else:
            log.warning("data.exclude %s: no such case or case-day in the dataset", name)


def _where(parallel: ParallelConfig) -> str:
    if parallel.backend == "dask":
        return f"dask scheduler {parallel.scheduler}" if parallel.scheduler else \
            f"dask LocalCluster, {parallel.n_jobs} workers"
    return f"joblib, n_jobs {parallel.n_jobs}"


def _conventions(config: ExperimentConfig):
    """``metrics: {preset: mlebench, ...}``: a named preset, then any field overriding it."""
    try:
        return MetricConventions.from_mapping(config.metrics)
    except (TypeError, ValueError) as exc:
        raise DataError(f"config metrics: {exc}") from None


def _fit_or_load(track, directory: Path, key: str, seed: int, index, train_keys, val_keys,
                 parallel, trained=None):
    adapter = make_adapter(track.kind, track.settings, random_state=seed,
                           written=track.params)
    done, why = step_status(directory, key)
    twin = (trained or {}).get(key)
    if not done and twin is not None and twin != directory and step_status(twin, key)[0]:
        # Another track of this run (same data, kind, params and seed) trained it.
        if directory.exists():
            shutil.rmtree(directory)
        shutil.copytree(twin, directory)
        log.info("%s: same model as %s, copied", track.name, twin.parent.name)
        done = True
    if done:
        log.info("%s: trained model cached, loading %s", track.name, directory)
        return adapter.load(directory)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    log.info("%s: training on %d stacks (%d slices) (%s)", track.name, len(train_keys),
             sum(index.ref(k).n_slices for k in train_keys), why)
    adapter.fit(index, train_keys, val_keys, parallel=parallel)
    adapter.save(directory)
    release_memory()  # the training sample is gone; hand its pages back
    mark_done(directory, key, fit_seconds=adapter.fit_seconds, training=adapter.training)
    log.info("%s: trained in %.1f s", track.name, adapter.fit_seconds)
    training = adapter.training
    if training and training.get("stopped") == "max_minutes":
        log.warning("%s: the time guard (max_minutes) stopped training after %d steps; "
                    "this track's numbers depend on the machine's speed", track.name,
                    training.get("steps", 0))
    return adapter


def resolve_out_dir(config: ExperimentConfig, out: str | Path | None) -> Path:
    """``--out`` or ``reports/<config name>``."""
    return Path(out) if out is not None else reports_dir() / config.name

