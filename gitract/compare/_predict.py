"""Predict a Kaggle submission with a track trained in a finished run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gitract.compare._files import read_json
from gitract.compare._steps import step_status
from gitract.data.index import index_dataset
from gitract.data.kaggle import gap_warning, stacks_to_rle_frame, write_submission
from gitract.data.record import DataError
from gitract.postprocessing import Postprocess
from gitract.tracks import make_track
from gitract.utils.outputs import check_output_file
from gitract.utils.parallel import ParallelConfig, map_scans


def load_trained_track(run_dir: str | Path, track: str | None, *, fold: int = 0,
                       device: str | None = None, num_threads: int | None = None):
    """``(adapter, postprocess)`` of ``track`` in ``run_dir`` (the model, and the thresholds
    and volume steps chosen on validation: :class:`~gitract.postprocessing.Postprocess`, what
    the run scored);
    ``track`` None picks the run's only track; ``device`` / ``num_threads`` override the
    saved ones of a deep track."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise DataError(f"{run_dir / 'config.json'}: missing; not a run folder (write one with "
                        "gitract compare, gitract blocks train or gitract unet train)")
    config = read_json(run_dir / "config.json")
    try:
        tracks = {t["name"]: t for t in config["tracks"]}
    except (KeyError, TypeError):
        raise DataError(f"{run_dir / 'config.json'}: no list of tracks; not the config of a "
                        "run") from None
    if track is None:
        if len(tracks) != 1:
            raise DataError(f"{run_dir}: {len(tracks)} tracks; name one with --track "
                            f"({', '.join(tracks)})")
        track = next(iter(tracks))
    if track not in tracks:
        raise DataError(f"{run_dir}: no track {track!r} (tracks: {', '.join(tracks)})")
    _check_fold(run_dir, fold)
    step = run_dir / "steps" / f"fold{fold}" / track
    for part in ("model", "eval"):
        done, why = step_status(step / part, None)
        if not done:
            raise DataError(
                f"{step / part}: no usable trained track {track!r} here ({why}); trained "
                "models are not committed with a report: rerun the comparison "
                f"(gitract compare CONFIG --out {run_dir}) to train it")
    t = tracks[track]
    try:
        adapter = make_track(t["kind"], t["params"], random_state=0).load(
            step / "model", device=device, num_threads=num_threads)
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"{step / 'model'}: {exc}; rerun the comparison "
                        f"(gitract compare CONFIG --out {run_dir}) to train it") from None
    except (ValueError, KeyError, TypeError, EOFError) as exc:
        raise DataError(f"{step / 'model'}: cannot load the trained track {track!r} "
                        f"({type(exc).__name__}: {exc})") from None
    metrics = read_json(step / "eval" / "metrics.json")
    try:
        tuning = Postprocess.from_metrics(metrics)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{step / 'eval' / 'metrics.json'}: no usable tuned postprocessing "
                        f"({type(exc).__name__}: {exc})") from None
    return adapter, tuning


def _check_fold(run_dir: Path, fold: int) -> None:
    """A fold the run has (its ``splits.json``, else its config's ``split.n_folds``)."""
    splits = run_dir / "splits.json"
    if splits.is_file():
        folds = read_json(splits).get("folds")
        n = len(folds) if isinstance(folds, list) else None
    else:
        split = read_json(run_dir / "config.json").get("split") or {}
        n = split.get("n_folds") if split.get("cross_validate") else 1
    if isinstance(n, int) and n >= 1 and not 0 <= fold < n:
        has = "one fold, 0" if n == 1 else f"folds 0..{n - 1}"
        raise DataError(f"--fold {fold}: the run {run_dir} has {has}")


def _predict_scan(source, *, adapter, tuning):
    stack = source.read()
    masks = {stack.key: tuning.apply(adapter.predict_proba_stack(stack), stack.slice_numbers)}
    return stacks_to_rle_frame([stack], masks, column="predicted"), stack.n_slices


def predict_submission(run_dir, track: str | None, data_dir, out, *, fold: int = 0,
                       images_subdir: str = "test", parallel=None, device: str | None = None,
                       num_threads: int | None = None, allow_gaps: bool = False,
                       warn: Callable[[str], None] | None = None,
                       force: bool = False) -> tuple[Path, int]:
    """Write ``id,class,predicted`` for every slice under ``data_dir/images_subdir``,
    reading one scan at a time.

    With ``allow_gaps`` a sparse stack (slices missing) is predicted on the slices
    present: each scan keeps its true slice numbers, so a 2.5D track takes its context
    from the nearest slices present; ``warn`` receives one line per such stack before
    anything is predicted. Without it a gap stops with a :class:`DataError`. ``out`` is
    new or a submission written before; another file is replaced only with ``force``
    (checked before anything is read).
    """
    import pandas as pd

    check_output_file(out, header="id,class,predicted", command="gitract predict",
                      force=force)
    adapter, tuning = load_trained_track(run_dir, track, fold=fold, device=device,
                                         num_threads=num_threads)
    scans = Path(data_dir) / images_subdir
    if not scans.is_dir():
        raise DataError(f"{scans}: no such folder (scans are read from DATA_DIR/"
                        f"{images_subdir}; choose another with --images-subdir, e.g. train)")
    # The truth (train.csv beside train/) is not read: predict checks only the scans.
    index = index_dataset("kaggle", data_dir, images_subdir=images_subdir,
                          classes=tuning.classes, allow_gaps=allow_gaps, labels=False)
    for key in index.keys():
        info = index.source(key).kaggle
        line = gap_warning(str(Path(info["paths"][0]).parent), info["slices"])
        if line is not None and warn is not None:
            warn(line)
    parts = map_scans(_predict_scan, [index.source(k) for k in index.keys()],
                      parallel=parallel or ParallelConfig(), desc="predicting scans",
                      adapter=adapter, tuning=tuning)
    frame = pd.concat([p[0] for p in parts], ignore_index=True)
    write_submission(frame, out)
    return Path(out), sum(p[1] for p in parts)
