"""``report.md`` of a training run (a split with no test cases) and the deep tracks'
training lines that every report shows.

A training run (``gitract blocks train``, ``gitract unet train``) fits each track and
tunes its thresholds on validation cases; nothing is scored, so its report lists the
tuned thresholds, the validation numbers that chose them (optimistic by construction),
fit times and model sizes, and how to apply a track with ``gitract predict``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gitract.utils.io import write_text_atomic

__all__ = ["build_training_report", "training_lines"]


def training_lines(summary: dict) -> list[str]:
    """One line per deep track: budget, steps and epochs run, and why training stopped."""
    lines = []
    for name, t in summary["tracks"].items():
        for k, fold in enumerate(t.get("folds") or []):
            tr = fold.get("training")
            if not tr:
                continue
            budget = ", ".join(f"{b} {v}" for b, v in (tr.get("budget") or {}).items()
                               if v is not None)
            ran = f"{tr['epochs']} epochs" + (f", {tr['steps']} optimiser steps"
                                               if tr.get("steps") is not None else "")
            why = {"max_steps": "step budget reached", "max_epochs": "epoch budget reached",
                   "patience": "early stopping (no validation improvement)",
                   "max_minutes": "**the time guard (max_minutes) fired: this track's "
                                  "numbers depend on the machine's speed**"}.get(
                tr.get("stopped"), str(tr.get("stopped")))
            on = {"val_score": "the highest validation competition score",
                  "val_dice": "the highest pooled validation Dice",
                  "val_loss": "the lowest validation loss"}.get(tr.get("monitor"))
            best = (f"; weights of epoch {tr['best_epoch']} kept"
                    + (f" ({on})" if on else "")) if tr.get("best_epoch") else ""
            lines.append(f"- {name}, fold {k}: budget {budget or 'n/a'}; ran {ran}; "
                         f"stopped: {why}{best}.")
    return lines


def _num(v: Any, fmt: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) \
        else fmt.format(v)


def build_training_report(out: Path, summary: dict, config: dict, env: dict) -> Path:
    """Write ``report.md`` of a training run from its ``summary.json``, ``config.json`` and
    ``env.json`` (already read by :func:`gitract.compare.build_report`)."""
    splits = summary["split"]
    ds = summary["dataset"]
    lines = [f"# gitract training run: {config['name']}", ""]
    if summary["synthetic"]:
        lines += ["> **SYNTHETIC DATA.** Trained on the embedded abdominal-MRI phantom "
                  "(`gitract.data.phantom`), not on patient images.", ""]
    else:
        lines += [f"> Real data: `{ds['kind']}` ({ds['path'] or 'default location'}).", ""]
    lines += [
        "## Dataset and split", "",
        f"- Dataset: `{ds['kind']}`" + (f" with phantom settings `{ds['phantom']}`"
                                        if ds.get("phantom") else ""),
        f"- Cases: {len(splits['cases'])} ({', '.join(splits['cases'])})"
        + (f"; every {ds['slice_step']}th slice of each stack kept"
           if ds.get("slice_step", 1) > 1 else ""),
        f"- Split: {splits['scheme']}; seed {splits['seed']}.",
    ]
    for k, f in enumerate(splits["folds"]):
        lines.append(f"  - fold {k}: train {f['train']}, val {f['val']}")
    lines += [
        "- **No test cases: nothing was scored.** The validation numbers below come from the "
        "cases that chose the thresholds, so they are optimistic; held-out scores come from "
        "`gitract blocks evaluate`, `gitract cnn evaluate` or `gitract compare`.",
        f"- Metric conventions: {summary['conventions']}",
        f"- Machine: {env['processor']}, {env['cpu_count']} CPUs, device {env['device']}"
        + (f" ({env['gpu']})" if env.get("gpu") else "") + ".",
        f"- Seed {config['seed']}, torch deterministic algorithms: {config['deterministic']}.",
        "", "## Tracks", "",
        "| track | kind | fit (s) | model bytes | settings |", "|---|---|---|---|---|",
    ]
    for name, t in summary["tracks"].items():
        lines.append(f"| {name} | {t['kind']} | {_num(t.get('fit_s'), '{:.1f}')} | "
                     f"{_num(t.get('model_bytes'), '{:d}')} | "
                     f"`{json.dumps(t['params'], sort_keys=True)}` |")
    lines += ["", "## Thresholds tuned on the validation cases", "",
              "| track | fold | class | threshold | min size (px) | val Dice | val Hausdorff "
              "| val score |", "|---|---|---|---|---|---|---|---|"]
    for name, t in summary["tracks"].items():
        for k, fold in enumerate(t.get("folds") or []):
            val = fold.get("validation")
            if not val:
                lines.append(f"| {name} | {k} | (no validation case: 0.5, no size filter) "
                             "| | | | | |")
                continue
            for cls, v in val.items():
                lines.append(
                    f"| {name} | {k} | {cls} | {_num(v['threshold'], '{:.2f}')} | "
                    f"{v['min_size']} | {_num(v['dice'], '{:.3f}')} | "
                    f"{_num(v['hausdorff'], '{:.3f}')} | {_num(v['score'], '{:.3f}')} |")
    training = training_lines(summary)
    if training:
        lines += ["", "## Training of the deep tracks", "", *training]
    first = next(iter(summary["tracks"]), "TRACK")
    lines += ["", "## Using a trained track", "",
              f"`gitract predict {out} --track {first} --data-dir DATA --out submission.csv` "
              "writes a Kaggle submission (`id,class,predicted`) for the scans under "
              "`DATA/test` with that track's model and thresholds. The models sit in "
              "`steps/fold0/<track>/model/`, on the machine that trained them.", "",
              "## Files", "",
              "`summary.json`, `sweep.csv` (validation sweep), `training.csv`, `splits.json`, "
              "`config.json`, `env.json`, `log.txt`; `steps/` holds the models and thresholds.",
              ""]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path
