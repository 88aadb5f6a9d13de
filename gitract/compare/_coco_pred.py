"""Predictions of a trained track as COCO results (``gitract export coco-pred``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gitract.compare._files import read_json
from gitract.compare._predict import load_trained_track
from gitract.data.coco import mask_annotations
from gitract.data.coco_export import image_id_offsets, write_json
from gitract.data.record import DataError
from gitract.utils.parallel import ParallelConfig, map_scans


def _predict_records(item, *, adapter, tuning) -> list[dict]:
    """COCO results of one scan: a record per predicted (slice, class) mask, ``score``
    the mean probability of the class inside the mask."""
    source, first_id = item
    stack = source.read()
    proba = adapter.predict_proba_stack(stack)
    masks = tuning.apply(proba, stack.slice_numbers)
    out = []
    for i in range(stack.n_slices):
        for ann in mask_annotations(masks[i], image_id=first_id + i, proba=proba[i]):
            del ann["iscrowd"]  # loadRes sets it; a result is never a crowd region
            out.append(ann)
    return out


def predict_coco(run_dir: str | Path, track: str | None, index, out_dir: str | Path, *,
                 fold: int = 0, cases: Sequence[str] | None = None, label: str = "all",
                 parallel=None,
                 device: str | None = None, num_threads: int | None = None
                 ) -> tuple[Path, int, int]:
    """Write the COCO results (a JSON list) of ``track`` on the scans of ``index`` to
    ``out_dir/<track>_fold<fold>_<label>.json``.

    Parameters
    ----------
    run_dir, track, fold, device, num_threads
        As in :func:`gitract.compare._predict.load_trained_track` (the model of that
        fold and the thresholds tuned on its validation cases).
    index : DatasetIndex
        The data to predict, read one scan at a time; image ids are those of
        ``gitract export coco`` on the same data (:func:`image_id_offsets`).
    out_dir : path
        Folder of the JSON file (written atomically).
    cases : sequence of str, optional
        Predict only these cases' scans (default: every scan).
    label : str
        What ``cases`` are, in the file name (``test``, ``all``).

    Returns
    -------
    (path, n_slices, n_results)
    """
    adapter, tuning = load_trained_track(run_dir, track, fold=fold, device=device,
                                         num_threads=num_threads)
    if track is None:  # the run's only track (load_trained_track checked there is one)
        track = read_json(Path(run_dir) / "config.json")["tracks"][0]["name"]
    if tuple(index.classes) != tuple(tuning.classes):
        raise DataError(f"{run_dir}: the track predicts {list(tuning.classes)}, the data "
                        f"have classes {list(index.classes)}")
    offsets = image_id_offsets(index)
    keys = index.keys() if cases is None else index.keys_of(sorted(cases))
    keys = sorted(keys, key=offsets.__getitem__)
    parts = map_scans(_predict_records, [(index.source(k), offsets[k]) for k in keys],
                      parallel=parallel or ParallelConfig(), desc="predicting scans",
                      adapter=adapter, tuning=tuning)
    results = [r for part in parts for r in part]
    path = write_json(results, Path(out_dir) / f"{track}_fold{fold}_{label}.json")
    return path, sum(index.ref(k).n_slices for k in keys), len(results)
