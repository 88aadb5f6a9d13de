"""The report's section on the locked hold-out: what the final step scored, when, with
which settings, and whether they changed since (read from ``final/``)."""

from __future__ import annotations

import json
from pathlib import Path

from gitract.compare._report_statistics import interval_text
from gitract.compare._run_folder import comparable_config, config_differences

__all__ = ["final_lines"]


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def final_lines(out: str | Path, splits: dict, config: dict) -> list[str]:
    """``## Locked hold-out``: nothing without a hold-out; "not scored yet" before the final
    step; else the hold-out table, the settings it was scored with and any forced
    rescoring or later change of the run's settings."""
    holdout = splits.get("holdout") or []
    if not holdout:
        return []
    out = Path(out)
    record = _read(out / "final" / "final.json")
    summary = _read(out / "final" / "summary.json")
    head = ["## Locked hold-out (final step)", ""]
    if record is None or summary is None:
        return [*head, f"{len(holdout)} case(s) set aside before any fold was made "
                f"({', '.join(holdout)}): not scored yet. `gitract compare CONFIG --final` "
                "scores them once, after every choice is made.", ""]
    stats = (summary.get("statistics") or {}).get("tracks") or {}
    lines = [*head,
             f"Scored on {record.get('scored_at')} by `--final`: {len(holdout)} case(s) "
             f"({', '.join(holdout)}) that no model, threshold, volume step, reference or "
             "representative was chosen with. Each fold's trained track, with the thresholds "
             "and steps its validation cases chose, predicted them; rows pooled over the "
             "folds. Full report: [final/report.md](final/report.md). Settings key "
             f"`{record.get('settings_key')}`.", "",
             "| track | Score [95% CI] | Dice [95% CI] |", "|---|---|---|"]
    for name, t in summary.get("tracks", {}).items():
        iv = stats.get(name, {})
        lines.append(f"| {name} | {interval_text(iv.get('score')) if iv else t.get('score')} | "
                     f"{interval_text(iv.get('dice')) if iv else t.get('dice')} |")
    for h in record.get("history") or []:
        lines += ["", f"**Scored again after the settings changed (forced).** An earlier "
                      f"scoring on {h.get('scored_at')} used other settings ({h.get('changed')})."]
    changed = config_differences(record.get("config"), comparable_config(config))
    if changed:
        lines += ["", "**The run's settings changed after the hold-out was scored** "
                      f"({', '.join(changed[:6])}): these figures belong to the earlier "
                      "settings."]
    return [*lines, ""]
