"""Several training seeds on one split: each extra seed is a run of its own under
``seeds/s<seed>/`` (its ``splits.json``, ``steps/`` and tables, made by the one engine),
and the main run's summary gives, per track, the mean and spread over seeds with an
interval that holds the seed variance as well as the test cases' (a two-level bootstrap,
:func:`gitract.metrics.seed_bootstrap_interval`).

The main run (``seed``) keeps its folder; it is one of the seeds. The paired comparisons,
the data-regime curve and the hold-out step use the main run only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from gitract.compare._statistics import CONFIDENCE, N_RESAMPLES, validation_values
from gitract.config import ExperimentConfig
from gitract.metrics import case_totals_by, seed_bootstrap_interval, weighted_metrics

__all__ = ["SEEDS_DIR", "extra_seeds", "seed_folders", "seed_lines", "seed_statistics",
           "seed_table"]

#: The sub-folder of a run folder that holds one run per extra seed.
SEEDS_DIR = "seeds"

_METHOD = ("two-level bootstrap: in each resample the test cases are drawn with "
           "replacement (the same draw for every seed) and the seeds are drawn with "
           "replacement; the value is the mean over the drawn seeds of the metric pooled "
           "over the drawn cases; percentile interval")


def extra_seeds(config: ExperimentConfig) -> list[int]:
    """The seeds run beside the main run (``seeds`` without ``seed``), in config order."""
    return [s for s in config.seeds if s != config.seed]


def seed_folders(out: str | Path, config: ExperimentConfig) -> list[tuple[int, Path]]:
    """``(seed, folder)`` of every seed, the main run first."""
    out = Path(out)
    return [(config.seed, out), *((s, out / SEEDS_DIR / f"s{s}") for s in extra_seeds(config))]


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path) if path.is_file() and path.stat().st_size > 1 else pd.DataFrame()
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def seed_table(out: str | Path, config: ExperimentConfig, stats: dict,
               main_tracks: dict) -> pd.DataFrame:
    """``seeds.csv``: one row per (track, seed): score, Dice and Hausdorff pooled over the
    test cases (``stats``: :func:`seed_statistics`) and the validation score (read from
    each seed's ``summary.json``; ``main_tracks`` is the main run's, not yet written)."""
    rows = []
    for i, (seed, folder) in enumerate(seed_folders(out, config)):
        tracks = main_tracks if i == 0 else json.loads(
            (folder / "summary.json").read_text())["tracks"]
        val = validation_values(tracks)
        for name, t in (stats.get("tracks") or {}).items():
            rows.append({"track": name, "seed": seed,
                         **{m: t[m]["per_seed"][i] for m in ("score", "dice", "hausdorff")},
                         "validation_score": val.get(name, {}).get("score", math.nan)})
    return pd.DataFrame(rows)


def seed_statistics(out: str | Path, config: ExperimentConfig, tracks: list[str], *,
                    n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE) -> dict:
    """Per track: over the seeds, the mean, standard deviation and each seed's value of
    Dice, Hausdorff and score pooled over the test cases, and the two-level bootstrap
    interval of the mean; empty without extra seeds."""
    folders = seed_folders(out, config)
    if len(folders) < 2:
        return {}
    totals = []
    for _, folder in folders:
        per_slice = _read(folder / "metrics_per_slice.csv")
        per_case = _read(folder / "metrics_per_case.csv")
        if per_slice.empty or per_case.empty:
            return {}
        totals.append(case_totals_by(per_slice, per_case, by=("model",)))
    out_tracks = {}
    for name in tracks:
        by_seed = [t.get((name,)) for t in totals]
        if any(t is None for t in by_seed):
            continue
        intervals = seed_bootstrap_interval(by_seed, n_resamples=n_resamples,
                                            confidence=confidence, random_state=config.seed)
        points = [weighted_metrics(t, np.ones(t.n_cases)) for t in by_seed]
        entry = {}
        for metric, iv in intervals.items():
            values = [float(p[metric]) for p in points]
            entry[metric] = {"mean": iv.estimate, "low": iv.low, "high": iv.high,
                             "sd": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                             "per_seed": values}
        out_tracks[name] = entry
    return {"seeds": [s for s, _ in folders], "method": _METHOD, "n_resamples": n_resamples,
            "confidence": confidence, "tracks": out_tracks}


def seed_lines(summary: dict) -> list[str]:
    """``## Seeds``: each track's score and Dice under every seed, their mean and
    standard deviation, and what the main table's intervals hold."""
    seeds = summary.get("seeds") or {}
    if not seeds.get("tracks"):
        return []
    lines = [
        "## Seeds", "",
        f"Every track was trained under {len(seeds['seeds'])} seeds "
        f"({', '.join(str(s) for s in seeds['seeds'])}) on the same split; the seed changes "
        "the initial weights, the order of the batches, the augmentation and the blocks "
        "sampled, nothing else. The main table's Dice, Hausdorff and Score are the means "
        "over seeds (± the standard deviation over seeds) of the values pooled over the "
        f"test cases; their {seeds['confidence']:.0%} interval is a {seeds['method']} "
        f"({seeds['n_resamples']:,} resamples), so it holds the training variance as well "
        "as which patients were tested. The paired comparisons use the main run's seed "
        "only.", "",
        "| track | " + " | ".join(f"score, seed {s}" for s in seeds["seeds"])
        + " | score mean ± sd | Dice mean ± sd |",
        "|---|" + "---|" * (len(seeds["seeds"]) + 2),
    ]
    for name, t in seeds["tracks"].items():
        per_seed = " | ".join(f"{v:.3f}" for v in t["score"]["per_seed"])
        lines.append(f"| {name} | {per_seed} | {_mean_sd(t['score'])} | {_mean_sd(t['dice'])} |")
    return [*lines, ""]


def _mean_sd(entry: dict) -> str:
    sd = entry.get("sd")
    text = f"{entry['mean']:.3f}"
    return text + (f" ± {sd:.3f}" if sd is not None and math.isfinite(sd) else "")
