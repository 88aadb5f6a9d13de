"""The final step: the locked hold-out scored once, by each fold's trained tracks.

``split.holdout`` cases leave before any fold is made (:func:`gitract.compare._run.make_folds`),
so no model, threshold, volume step, reference track or family representative is chosen
with them. ``gitract compare CONFIG --final`` then scores them here: every fold's trained
track, with the thresholds and steps its validation cases chose (tuned again the same way,
on the same cases), predicts the hold-out scans into ``final/`` (a run folder of its own:
tables, ``summary.json``, ``report.md``). ``final/final.json`` records the settings scored
(the run's config and every step's key); scoring again after they changed is refused unless
forced, and a forced rescoring is recorded and reported.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from gitract.compare._aggregate import aggregate_run
from gitract.compare._files import hash_key, read_json, write_json
from gitract.compare._report import build_report
from gitract.compare._run_folder import comparable_config, config_differences
from gitract.compare._step_eval import evaluate_step
from gitract.compare._steps import read_marker
from gitract.config import ExperimentConfig
from gitract.data.record import DataError
from gitract.tracks import make_adapter
from gitract.utils.io import write_text_atomic

__all__ = ["FINAL_DIR", "FINAL_RECORD", "final_settings", "score_holdout"]

# read_final_record lives with the report (gitract.compare._report_final).

log = logging.getLogger("gitract.compare")

FINAL_DIR = "final"
FINAL_RECORD = "final.json"


def final_settings(config: ExperimentConfig, out: Path, n_folds: int) -> dict:
    """What the hold-out score depends on: the run's config (without where it ran) and the
    key of every (fold, track) evaluation step."""
    steps = {f"fold{k}/{t.name}":
             (read_marker(out / "steps" / f"fold{k}" / t.name / "eval") or {}).get("key")
             for k in range(n_folds) for t in config.tracks}
    return {"config": comparable_config(config.to_dict()), "steps": steps}


def _changes(old: dict, new: dict) -> str:
    keys = config_differences(old.get("config"), new["config"])
    steps = [s for s in new["steps"] if (old.get("steps") or {}).get(s) != new["steps"][s]]
    parts = ([f"config keys {', '.join(keys[:6])}"] if keys else []) + (
        [f"{len(steps)} step(s) re-run ({', '.join(steps[:4])})"] if steps else [])
    return "; ".join(parts) or "settings"


def score_holdout(config: ExperimentConfig, out: Path, index, splits: dict, folds: list,
                  track_seed: int, parallel, conventions, *, force: bool = False) -> Path:
    """Score the locked hold-out with every fold's trained tracks into ``out/final``;
    returns that folder. Raises :class:`DataError` when the config has no hold-out, a
    step is not finished, or the hold-out was scored before with other settings (unless
    ``force``)."""
    holdout = list(splits.get("holdout") or [])
    if not holdout:
        raise DataError(f"{config.name}: split.holdout is not set: --final has no locked "
                        "hold-out to score")
    final = out / FINAL_DIR
    settings = final_settings(config, out, len(folds))
    missing = [s for s, key in settings["steps"].items() if key is None]
    if missing:
        raise DataError(f"{out}: step {missing[0]} is not finished; the run must finish "
                        "before its hold-out is scored")
    key = hash_key(settings)
    record = read_json(final / FINAL_RECORD) if (final / FINAL_RECORD).is_file() else None
    history = list((record or {}).get("history") or [])
    if record is not None and record.get("settings_key") == key and \
            (final / "report.md").is_file():
        log.info("hold-out already scored with these settings on %s: %s",
                 record.get("scored_at"), final / "report.md")
        return final
    if record is not None and record.get("settings_key") != key:
        change = _changes(record, settings)
        if not force:
            raise DataError(
                f"{final}: the locked hold-out was scored on {record.get('scored_at')} with "
                f"other settings ({change}); scoring it again after a change would let it "
                "choose them: run with --final --force to score it anyway (the report "
                "will say so)")
        history.append({"settings_key": record.get("settings_key"),
                        "scored_at": record.get("scored_at"), "changed": change})
        log.warning("hold-out scored again after the settings changed (%s), forced", change)
    keys = index.keys_of(holdout)
    for k, (train, val, _) in enumerate(folds):
        for track in config.tracks:
            step = out / "steps" / f"fold{k}" / track.name
            adapter = make_adapter(track.kind, track.settings, random_state=track_seed,
                                   written=track.params).load(step / "model")
            log.info("final: fold %d %s scores the %d hold-out case(s)", k, track.name,
                     len(holdout))
            evaluate_step(adapter, track.name, k, index, index.keys_of(val), keys,
                          final / "steps" / f"fold{k}" / track.name / "eval", key,
                          conventions, [], config.report.calibration_bins,
                          track.tuning.options(config.min_sizes), parallel,
                          train_keys=index.keys_of(train))
    write_json(final / "splits.json", {
        **{k: v for k, v in splits.items() if k not in ("learning_curve", "untested",
                                                        "holdout")},
        "scheme": f"locked hold-out ({len(holdout)} case(s)), scored once by each of the "
                  f"{len(folds)} fold(s)' trained tracks; rows pooled over the folds",
        "cases": holdout,
        "folds": [{"train": list(t), "val": list(v), "test": holdout} for t, v, _ in folds]})
    for name in ("config.json", "env.json"):
        write_text_atomic(final / name, (out / name).read_text())
    aggregate_run(final, config)
    build_report(final)
    write_json(final / FINAL_RECORD, {
        "settings_key": key, "scored_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "holdout": holdout, "forced_after_change": bool(history), "history": history,
        **settings})
    log.info("hold-out scored: %s", final / "report.md")
    return final
