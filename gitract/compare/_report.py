"""``report.md`` and figures from a finished run folder (no retraining)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from gitract.compare._files import clean, write_json
from gitract.compare._learning_curve import curve_lines
from gitract.compare._seeds import seed_lines
from gitract.compare._report_blocks import block_model_lines
from gitract.compare._report_final import final_lines
from gitract.compare._report_postprocess import postprocess_section
from gitract.compare._report_split import split_coverage_lines, volume_lines
from gitract.compare._report_statistics import (
    convergence_lines,
    empty_readings_section,
    paired_section,
)
from gitract.compare._report_tables import (  # noqa: F401  (main_table: notebooks use it)
    _markdown_table,
    _table_text,
    main_table,
    written_summary,
)
from gitract.compare._report_training import build_training_report, training_lines
from gitract.compare._statistics import CONFIDENCE, N_RESAMPLES, folder_statistics
from gitract.utils.io import atomic_path, write_text_atomic

FIGURES = ("probability_maps", "threshold_sweeps", "reliability", "confusion", "empty_slices",
           "learning_curves", "data_regime")


def _save_fig(fig, path: Path, *, dpi: int = 100) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def _read_table(path: Path) -> pd.DataFrame:
    """A run-level CSV, empty when absent or header-less."""
    if not path.is_file() or path.stat().st_size <= 1:
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _example_maps(out: Path, tracks: list[str], examples: list[str]) -> dict[str, dict]:
    """``{slice id: {"image", "truth", "proba": {track: map}}}`` from the saved examples
    of fold 0 (the run folder alone: the dataset is not read again)."""
    found: dict[str, dict] = {}
    for name in tracks:
        path = out / "steps" / "fold0" / name / "eval" / "examples.npz"
        if not path.is_file():
            continue
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError):
            continue
        for sid in examples:
            if f"proba__{sid}" not in arrays:
                continue
            entry = found.setdefault(sid, {"proba": {}})
            entry["proba"][name] = arrays[f"proba__{sid}"].astype(np.float32)
            entry.setdefault("image", arrays[f"image__{sid}"].astype(np.float32))
            entry.setdefault("truth", arrays[f"truth__{sid}"].astype(bool))
    return found


def _figures(out: Path, summary: dict, classes: list[str]) -> tuple[dict, dict, dict]:
    """Draw every figure there is data for: ``(made, skipped, notes)``, file names per
    figure, for a figure with nothing to draw the reason (a line of the report), and a note
    for figures kept from an earlier build."""
    import matplotlib.pyplot as plt

    from gitract import plots

    figdir = out / "figures"
    figdir.mkdir(exist_ok=True)
    made: dict[str, list[str]] = {k: [] for k in FIGURES}
    skipped: dict[str, str] = {}
    notes: dict[str, str] = {}
    tracks = list(summary["tracks"])

    examples_path = out / "examples.json"
    examples = json.loads(examples_path.read_text())["ids"] if examples_path.is_file() else []
    maps = _example_maps(out, tracks, examples)
    for n, sid in enumerate(sid for sid in examples if sid in maps):
        entry = maps[sid]
        fig = plots.plot_proba_maps(entry["image"], entry["proba"], entry["truth"],
                                    classes=classes,
                                    title=f"{sid}: probability maps (cyan: truth contour)")
        fname = f"probability_maps_{n}.png"
        _save_fig(fig, figdir / fname, dpi=75)
        made["probability_maps"].append(fname)
    # Without the cache a rebuilt report keeps the maps this run drew when it had it.
    kept = [f"probability_maps_{n}.png" for n in range(len(examples))
            if not maps and (figdir / f"probability_maps_{n}.png").is_file()]
    if kept:
        made["probability_maps"] = kept
        notes["probability_maps"] = (
            "Drawn when this run folder still held its `steps/` cache (the example maps); "
            "kept as they were when the report was rebuilt without it.")
    if not made["probability_maps"]:
        skipped["probability_maps"] = (
            "no example probability maps in this run folder (they live in its `steps/` "
            "cache, which is not committed); rerun the comparison to draw them"
            if examples else "no test slice holds an organ to show")

    sweep = _read_table(out / "sweep.csv")
    part = sweep[sweep["fold"] == 0] if len(sweep) else sweep
    if len(part):
        fig = plots.plot_threshold_sweeps(
            {name: g for name, g in part.groupby("model", sort=False)}, classes=classes)
        _save_fig(fig, figdir / "threshold_sweeps.png")
        made["threshold_sweeps"].append("threshold_sweeps.png")
    else:
        skipped["threshold_sweeps"] = "no threshold sweep (no validation cases)"

    cal = _read_table(out / "calibration.csv")
    if len(cal):
        agg = (cal.assign(sum_p=cal["mean_proba"] * cal["count"], pos=cal["frac_pos"] * cal["count"])
               .groupby(["model", "class", "bin"], sort=False)[["sum_p", "pos", "count"]].sum()
               .reset_index())
        agg["mean_proba"] = agg["sum_p"] / agg["count"]
        agg["frac_pos"] = agg["pos"] / agg["count"]
        fig = plots.plot_reliability(agg.rename(columns={"model": "track"}), classes=classes)
        _save_fig(fig, figdir / "reliability.png")
        made["reliability"].append("reliability.png")
    else:
        skipped["reliability"] = "no calibration table"

    conf = _read_table(out / "confusion.csv")
    if len(conf):
        labels = ["background", *classes]
        mats = {}
        for name, g in conf.groupby("model", sort=False):
            g = g.groupby(["true", "predicted"])["count"].sum()
            mats[name] = np.array([[g.get((t, p), 0) for p in labels] for t in labels])
        fig = plots.plot_confusions(mats, labels=labels)
        _save_fig(fig, figdir / "confusion.png")
        made["confusion"].append("confusion.png")
    else:
        skipped["confusion"] = "no confusion table"

    empty = _read_table(out / "empty.csv")
    if len(empty) and (empty["n_empty_slices"] > 0).any():
        agg = empty.groupby(["model", "class"], sort=False)[["n_empty_slices",
                                                              "n_false_positive"]].sum()
        agg = agg.reset_index()
        agg["fp_rate"] = agg["n_false_positive"] / agg["n_empty_slices"].where(
            agg["n_empty_slices"] > 0)
        fig, ax = plt.subplots(figsize=(7, 3), layout="constrained")
        plots.plot_bars(agg.rename(columns={"model": "track"}), column="fp_rate",
                        ylabel="share of empty slices\nwith a prediction", ax=ax)
        _save_fig(fig, figdir / "empty_slices.png")
        made["empty_slices"].append("empty_slices.png")
    else:
        skipped["empty_slices"] = "the test slices hold no organ-free slice of any class"

    curves = _read_table(out / "training.csv")
    if len(curves):
        fig = plots.plot_learning_curves(curves)
        _save_fig(fig, figdir / "learning_curves.png")
        made["learning_curves"].append("learning_curves.png")
    else:
        skipped["learning_curves"] = ("no training curve in this run folder (no deep track, "
                                      "or a run older than `training.csv`)")
    regime = _read_table(out / "learning_curve.csv")
    if len(regime):  # only a run with a data-regime curve draws (and mentions) it
        ax = plots.plot_data_regime(regime)
        _save_fig(ax.figure, figdir / "data_regime.png")
        made["data_regime"].append("data_regime.png")
    return made, skipped, notes


def build_report(out: str | Path, *, n_resamples: int = N_RESAMPLES,
                 confidence: float = CONFIDENCE) -> Path:
    """Write ``report.md`` and ``figures/`` for a finished run folder, and the statistics
    (bootstrap intervals, paired comparisons, convergence) into its ``summary.json``.

    Everything comes from the run folder's files (``summary.json``, the CSVs and the saved
    example maps), so ``gitract report RUN_DIR`` rebuilds it without retraining. The
    bootstrap uses the run's seed and ``n_resamples`` resamples of the test cases.
    """
    out = Path(out)
    for name in ("summary.json", "config.json", "env.json"):
        if not (out / name).is_file():
            raise FileNotFoundError(
                f"{out / name}: missing; the run has not finished (rerun the comparison "
                "to complete it)")
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    env = json.loads((out / "env.json").read_text())
    splits = summary["split"]
    if not any(f["test"] for f in splits["folds"]):
        return build_training_report(out, summary, config, env)
    stats = clean(folder_statistics(out, summary["tracks"], seed=config["seed"],
                                    n_resamples=n_resamples, confidence=confidence))
    if summary.get("statistics") != stats:
        summary["statistics"] = stats
        write_json(out / "summary.json", summary)
    any_track = next(iter(summary["tracks"].values()), None)
    classes = list(any_track["per_class"]) if any_track else []
    made, skipped, notes = _figures(out, summary, classes) if any_track else ({}, {}, {})
    ds = summary["dataset"]
    lines = [f"# gitract comparison: {config['name']}", ""]
    if summary["synthetic"]:
        lines += ["> **SYNTHETIC DATA.** This run used the embedded abdominal-MRI phantom "
                  "(`gitract.data.phantom`), not patient images. Its numbers say how the methods "
                  "behave on the phantom, not on real MRI.", ""]
    else:
        lines += [f"> Real data: `{ds['kind']}` ({ds['path'] or 'default location'}).", ""]
    per_slice = _read_table(out / "metrics_per_slice.csv")
    n_slices = per_slice["id"].nunique() if len(per_slice) else 0
    lines += [
        "## Dataset and split", "",
        f"- Dataset: `{ds['kind']}`" + (f" with phantom settings `{ds['phantom']}`" if ds['phantom'] else ""),
        f"- Cases: {len(splits['cases'])} ({', '.join(splits['cases'])})"
        + (f"; every {ds['slice_step']}th slice of each stack kept" if ds.get("slice_step", 1) > 1
           else ""),
        f"- Split: {splits['scheme']}; seed {splits['seed']}; {len(splits['folds'])} fold(s).",
    ]
    for k, f in enumerate(splits["folds"]):
        lines.append(f"  - fold {k}: train {f['train']}, val {f['val']}, test {f['test']}")
    lines += split_coverage_lines(splits)
    lines += [
        f"- Test slices scored (all folds): {n_slices}",
        *volume_lines(per_slice),
        # The conventions sentence says how the rows and volumes are formed (and names the
        # preset); under the mlebench preset Hausdorff volumes are not per class.
        f"- Metric: competition score = 0.4·Dice + 0.6·(1 − 3D Hausdorff). {summary['conventions']}",
        "- One tuning rule for every track: per class, the threshold (0.05..0.95) and the minimum "
        f"component size (candidates {config.get('min_sizes')} px) that maximise the validation "
        "score; test cases never set them.",
        f"- Machine: {env['processor']}, {env['cpu_count']} CPUs, device {env['device']}"
        + (f" ({env['gpu']})" if env.get("gpu") else "") + f"; torch threads {env['torch_threads']}.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v),
        f"- Seed {config['seed']}" + (f" (the split and the main run; training seeds {config['seeds']})"
                                       if config.get('seeds') else "")
        + f", torch deterministic algorithms: {config['deterministic']}.",
        "",
        "## Tracks", "",
        "| track | kind | settings |", "|---|---|---|",
    ]
    for name, t in summary["tracks"].items():
        lines.append(f"| {name} | {t['kind']} | `{json.dumps(t['params'], sort_keys=True)}` |")
    lines += ["", "## Main table", "",
              _table_text(summary), ""]
    lines.append(_markdown_table(summary, classes) if any_track else "(no finished track)")
    lines += ["", "## Summary (generated from the numbers)", "", written_summary(summary), ""]
    lines += postprocess_section(summary)
    lines += paired_section(stats)
    lines += empty_readings_section(stats)
    lines += seed_lines(summary)
    lines += curve_lines(_read_table(out / "learning_curve.csv"))
    lines += final_lines(out, splits, config)
    training = training_lines(summary)
    if training or stats["convergence"]:
        lines += ["## Training of the deep tracks", "",
                  "Budgets are in optimiser steps or epochs, so the same seed gives the same "
                  "weights on another machine; a time limit is only a guard.", "",
                  *training, "", *convergence_lines(stats)]
    lines += block_model_lines(out, summary)
    lines += ["## Figures", ""]
    captions = {
        "probability_maps": "Probability maps per class, every track side by side, truth contours",
        "threshold_sweeps": "Validation score against threshold (fold 0)",
        "reliability": "Reliability (calibration) curves per class, test pixels",
        "confusion": "Block-classification confusion matrices (dominant class at block centres, "
                     "8-pixel grid, row-normalised)",
        "empty_slices": "False positives on organ-free slices, per class",
        "learning_curves": "Learning curves of the deep tracks (training loss, validation)",
        "data_regime": "Data-regime curve: test score against training cases per fold",
    }
    for key in FIGURES:
        for fname in made.get(key, []):
            lines += [f"### {captions[key]}", "", f"![{key}](figures/{fname})", ""]
        if key in notes:
            lines += [notes[key], ""]
        if key in skipped:
            lines += [f"### {captions[key]}", "", f"Not drawn: {skipped[key]}.", ""]
    lines += ["## Files", "",
              "`summary.json` (the numbers above), `metrics_per_slice.csv`, `metrics_per_case.csv`, "
              "`sweep.csv`, `postprocess.csv`, `calibration.csv`, `confusion.csv`, `empty.csv`, "
              "`localisation.csv`, `training.csv`, `importance.csv` and `capacity.csv` (block "
              "tracks), `splits.json`, `config.json`, `env.json`, `log.txt`. The run's "
              "cache `steps/` (trained models, test predictions as RLE, example maps) stays on "
              "the machine that ran it and is not committed.", "",
              f"Reproduce: `python experiments/compare.py {config.get('config_path') or 'CONFIG'} "
              f"--out {out}`", ""]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path
