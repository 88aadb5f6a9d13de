"""The report's postprocessing section: per track and class, the volume steps chosen on
validation (gate, z-range, 3D components), and the share of organ-free test slices with a
predicted pixel before and after them."""

from __future__ import annotations

import math

__all__ = ["postprocess_section"]


def _share(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.2f}"


def _steps(step: dict) -> str:
    """One class's chosen steps in words ("off" where none)."""
    parts = []
    if step.get("gate_cut"):
        parts.append(f"gate max p ≥ {step['gate_cut']:g}")
    if step.get("gate_area"):
        parts.append(f"gate area ≥ {100 * step['gate_area']:g} %")
    if step.get("z_margin") is not None:
        z = step.get("z_range")
        where = f"[{z[0]:.2f}, {z[1]:.2f}]" if z else "no range"
        parts.append(f"z-range {where} ± {step['z_margin']:g}")
    fraction = step.get("component_fraction") or 0
    if fraction >= 1:
        parts.append("largest 3D component only")
    elif fraction > 0:
        parts.append(f"3D components ≥ {fraction:g} × largest")
    return ", ".join(parts) or "off"


def postprocess_section(summary: dict) -> list[str]:
    """Markdown lines (empty when no fold recorded volume steps: a run from before them)."""
    rows = []
    for name, track in summary["tracks"].items():
        for k, fold in enumerate(track.get("folds") or []):
            chosen = fold.get("postprocess")
            if not chosen:
                continue
            val = fold.get("postprocess_validation") or {}
            for cls, step in chosen.items():
                v = val.get(cls) or {}
                before, after = v.get("score_before"), v.get("score_after")
                gain = "n/a" if before is None or after is None else f"{after - before:+.3f}"
                moved = v.get("threshold_shift") or 0.0
                words = _steps(step) + (f"; threshold {moved:+g}" if moved else "")
                rows.append(f"| {name} | {k} | {cls} | {words} | {gain} |")
    if not rows:
        return []
    lines = ["## Postprocessing", "",
             "After the thresholds every track goes through the same volume steps, each chosen "
             "per class on the validation cases (the z-range from the training cases' masks): "
             "an empty-slice gate (maximum probability and predicted area of a slice), a "
             "z-range (relative slice position where the class occurs in training, with a "
             "margin) and 3D connected components (slices at their true numbers; components "
             "under a share of the largest dropped); the tuned threshold may move down with "
             "them (strays cleaned, a lower threshold can score better). A step stays off where it does not raise "
             "the validation score. Gain: validation score with the chosen steps minus "
             "without (optimistic: the same scans chose them).", "",
             "| track | fold | class | chosen steps | validation gain |", "|---|---|---|---|---|",
             *rows, "",
             "Share of organ-free test slices with any predicted pixel, with the final "
             "thresholds alone and after the volume steps (a threshold moved down with the "
             "steps makes the first column higher than the thresholds of a run without "
             "them: compare a track with its `postprocess` switched off for that):", "",
             "| track | final thresholds only | after the volume steps |", "|---|---|---|"]
    for name, track in summary["tracks"].items():
        lines.append(f"| {name} | {_share(track.get('empty_fp_rate_before'))} | "
                     f"{_share(track.get('empty_fp_rate'))} |")
    return [*lines, ""]
