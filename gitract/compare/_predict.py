"""Predict a Kaggle submission with a track trained in a finished run."""

from __future__ import annotations

import json
from pathlib import Path

from gitract.data.record import DataError


def load_trained_track(run_dir: str | Path, track: str, *, fold: int = 0):
    """``(adapter, tuning)`` of ``track`` in ``run_dir`` (model and validation thresholds)."""
    from gitract.compare._steps import step_status
    from gitract.compare._tracks import make_track
    from gitract.postprocessing import ThresholdTuning

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    tracks = {t["name"]: t for t in config["tracks"]}
    if track not in tracks:
        raise DataError(f"{run_dir}: no track {track!r} (tracks: {', '.join(tracks)})")
    step = run_dir / "steps" / f"fold{fold}" / track
    for part in ("model", "eval"):
        done, why = step_status(step / part, None)
        if not done:
            raise DataError(
                f"{step / part}: no usable trained track {track!r} here ({why}); trained "
                "models are not committed with a report: rerun the comparison "
                f"(gitract compare CONFIG --out {run_dir}) to train it")
    t = tracks[track]
    adapter = make_track(t["kind"], t["params"], random_state=0).load(step / "model")
    tuning = ThresholdTuning.from_dict(
        json.loads((step / "eval" / "metrics.json").read_text())["tuning"])
    return adapter, tuning


def predict_submission(run_dir, track: str, data_dir, out, *, fold: int = 0,
                       images_subdir: str = "test") -> tuple[Path, int]:
    """Write ``id,class,predicted`` for every slice under ``data_dir/images_subdir``."""
    from gitract.data.kaggle import (
        read_kaggle_dataset,
        stacks_to_rle_frame,
        write_submission,
    )

    adapter, tuning = load_trained_track(run_dir, track, fold=fold)
    stacks = read_kaggle_dataset(data_dir, images_subdir=images_subdir)
    proba = adapter.predict_proba(stacks)
    masks = {k: tuning.apply(p) for k, p in proba.items()}
    frame = stacks_to_rle_frame(stacks, masks, column="predicted")
    write_submission(frame, out)
    return Path(out), sum(s.n_slices for s in stacks)
