"""End-to-end comparison on a tiny phantom: report sections, figures, numbers, resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from gitract.compare import run_comparison
from gitract.compare._report import FIGURES
from gitract.compare._run import RunInterrupted, load_stacks
from gitract.config import load_config

TINY = Path(__file__).resolve().parent.parent / "experiments" / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    old = os.environ.get("GITRACT_CACHE")
    os.environ["GITRACT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        del os.environ["GITRACT_CACHE"]
    else:
        os.environ["GITRACT_CACHE"] = old


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, cache_env):
    config = load_config(TINY)
    out = tmp_path_factory.mktemp("run") / "tiny"
    run_comparison(config, out, progress=False, config_path=str(TINY))
    return config, out


def test_report_has_every_section_and_figure(tiny_run):
    config, out = tiny_run
    text = (out / "report.md").read_text()
    for section in ("SYNTHETIC DATA", "## Dataset and split", "## Tracks", "## Main table",
                    "## Summary (generated from the numbers)", "## Figures"):
        assert section in text
    for key in FIGURES:  # the data-regime curve only where the config asks for one
        assert (f"![{key}](figures/" in text) == (key != "data_regime"), key
    for name in ("config.json", "env.json", "splits.json", "summary.json", "log.txt",
                 "metrics_per_slice.csv", "metrics_per_case.csv"):
        assert (out / name).is_file(), name
    for link in [line.split("(")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]:
        assert (out / link).is_file(), link
    summary = json.loads((out / "summary.json").read_text())
    assert summary["synthetic"] is True
    assert set(summary["tracks"]) == {t.name for t in config.tracks}
    for track in summary["tracks"].values():
        for key in ("dice", "hausdorff", "score", "per_class", "fit_s", "ms_per_slice", "model_bytes"):
            assert key in track
        assert track["fit_s"] is not None and track["fit_s"] > 0
    # One tuning rule for every track: the sweep covers the configured component sizes.
    sweep = pd.read_csv(out / "sweep.csv")
    for _, part in sweep.groupby("model"):
        assert sorted(part["min_size"].unique()) == sorted(config.min_sizes)


def test_table_numbers_equal_metrics_of_saved_predictions(tiny_run):
    from gitract.data.splits import split_stacks
    from gitract.metrics import decode_submission, score_stacks

    config, out = tiny_run
    summary = json.loads((out / "summary.json").read_text())
    splits = json.loads((out / "splits.json").read_text())
    test = split_stacks(load_stacks(config), splits["folds"][0]["test"])
    text = (out / "report.md").read_text()
    for name, track in summary["tracks"].items():
        pred = pd.read_csv(out / "steps" / "fold0" / name / "eval" / "predictions.csv")
        masks = decode_submission(pred, test)
        result = score_stacks(test, masks)
        assert result.dice == pytest.approx(track["dice"], abs=1e-12)
        assert result.hausdorff == pytest.approx(track["hausdorff"], abs=1e-12)
        assert result.score == pytest.approx(track["score"], abs=1e-12)
        for cls, stats in result.per_class.items():
            assert stats["dice"] == pytest.approx(track["per_class"][cls]["dice"], nan_ok=True)
        table = text.split("## Main table")[1]
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert f"{result.score:.3f}" in row and f"{result.dice:.3f}" in row


def test_report_gives_intervals_paired_comparisons_and_convergence(tiny_run):
    config, out = tiny_run
    summary = json.loads((out / "summary.json").read_text())
    stats = summary["statistics"]
    assert stats["seed"] == config.seed and stats["n_resamples"] == 2000
    assert stats["n_cases"] == len(summary["split"]["folds"][0]["test"])
    text = (out / "report.md").read_text()
    table = text.split("## Main table")[1].split("## Summary")[0]
    for name, track in summary["tracks"].items():
        iv = stats["tracks"][name]["score"]
        # One fold: the pooled estimate is the fold's own score.
        assert iv["estimate"] == pytest.approx(track["score"], abs=1e-12)
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert f"{iv['estimate']:.3f} [{iv['low']:.2f}, {iv['high']:.2f}]" in row
    assert "case-level bootstrap interval" in table and "| Converged |" in table
    paired = text.split("## Paired comparisons")[1].split("\n## ")[0]
    reference = stats["comparisons"]["score"]["reference"]
    assert f"Reference: **{reference}**" in paired
    assert "| track | Score | Δ Score [95% CI] | Δ Dice [95% CI] |" in paired
    for name in summary["tracks"]:
        assert (f"| {name} | " in paired) == (name != reference)
    # One test case: too few to tell tracks apart, and the report says so.
    assert "no track is declared better" in text
    # The deep tracks trained one epoch: too short a curve to judge.
    conv = stats["convergence"]
    assert {t.name for t in config.tracks if t.kind != "blocks"} <= set(conv)
    assert all(c["converged"] == "n/a" for c in conv.values())
    assert "gains at most 1% of its best value" in text


def test_interrupted_run_resumes_without_recomputing(tmp_path, cache_env):
    config = load_config(TINY)
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted):
        run_comparison(config, out, stop_after=1, progress=False, report=False)
    first = out / "steps" / "fold0" / config.tracks[0].name
    marker = (first / "eval" / "done.json").read_text()
    model_marker = (first / "model" / "done.json").read_text()
    assert not (out / "steps" / "fold0" / config.tracks[1].name / "eval" / "done.json").exists()
    run_comparison(config, out, progress=False, report=False)
    assert (first / "eval" / "done.json").read_text() == marker  # not recomputed
    log = (out / "log.txt").read_text()
    assert f"fold 0 {config.tracks[0].name}: cached, skipped" in log
    # A changed config is refused without --force, naming the key that differs...
    changed = load_config(TINY, overrides={"metrics": {"dice_both_empty": 0.0}})
    with pytest.raises(ValueError, match=r"another config .*metrics\.dice_both_empty"):
        run_comparison(changed, out, progress=False, report=False)
    # ... and with it a changed metric convention re-evaluates every track, retrains none.
    run_comparison(changed, out, progress=False, report=False, force=True)
    assert (first / "model" / "done.json").read_text() == model_marker
    assert (first / "eval" / "done.json").read_text() != marker
    assert "trained model cached" in (out / "log.txt").read_text()
    # Fit times survive the resume: they come from the training step's record.
    from gitract.compare._run import aggregate_run

    summary = aggregate_run(out, changed)
    assert all(t["fit_s"] and t["fit_s"] > 0 for t in summary["tracks"].values())


def test_slice_step_keeps_every_nth_slice(cache_env):
    from gitract.config import config_from_dict

    raw = {"data": {"kind": "phantom", "phantom": {"n_cases": 3, "n_days": 1, "n_slices": 8,
                                                   "sizes": [[96, 96]]}}}
    full = load_stacks(config_from_dict(raw))
    raw["data"]["slice_step"] = 2
    half = load_stacks(config_from_dict(raw))
    assert [s.n_slices for s in half] == [4] * len(full)
    assert half[0].slice_numbers == full[0].slice_numbers[::2]
    with pytest.raises(ValueError, match="slice_step"):
        config_from_dict({"data": {"slice_step": 0}})


def test_predict_writes_a_submission_for_unseen_scans(tiny_run, tmp_path):
    from gitract.cli import main
    from gitract.data.phantom import PhantomConfig, write_phantom

    config, out = tiny_run
    data = write_phantom(tmp_path / "unseen", PhantomConfig(n_cases=1, n_days=1, n_slices=5,
                                                             sizes=((96, 96),), seed=7))
    (data / "train").rename(data / "test")
    (data / "train.csv").unlink()
    sub = tmp_path / "submission.csv"
    name = config.tracks[0].name
    assert main(["predict", str(out), "--track", name, "--data-dir", str(data),
                 "--out", str(sub)]) == 0
    frame = pd.read_csv(sub)
    assert list(frame.columns) == ["id", "class", "predicted"]
    assert len(frame) == 5 * 3
    assert main(["predict", str(out), "--track", "nope", "--data-dir", str(data),
                 "--out", str(sub)]) == 2


def test_report_rebuilds_without_retraining(tiny_run):
    from gitract.cli import main

    _, out = tiny_run
    before = {p: p.stat().st_mtime_ns for p in (out / "steps").rglob("done.json")}
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").is_file()
    assert before == {p: p.stat().st_mtime_ns for p in (out / "steps").rglob("done.json")}


# --------------------------------------------------------------- fresh clones and resumes
_TIMING_KEYS = {"fit_s", "ms_per_slice", "seconds", "finished", "stages"}


def _without_timings(obj):
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k not in _TIMING_KEYS}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def _as_git_delivers(run: Path, repo: Path, name: str) -> list[str]:
    """Delete what git would not deliver of ``run`` if it sat at ``reports/<name>`` (the
    repository's own .gitignore decides) but keep every ``done.json``, the case that broke
    fresh clones. Returns the deleted paths."""
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    files = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    proc = subprocess.run(
        ["git", "-C", str(repo), "check-ignore", "--no-index", "--stdin"],
        input="\n".join(f"reports/{name}/{f}" for f in files), capture_output=True, text=True,
        check=False)
    ignored = [line.split("/", 2)[2] for line in proc.stdout.splitlines() if line]
    gone = [f for f in ignored if not f.endswith("done.json")]
    for f in gone:
        (run / f).unlink()
    return gone


def test_run_delivered_by_git_resumes_to_a_complete_report(tiny_run, tmp_path):
    import shutil

    config, out = tiny_run
    run = tmp_path / "tiny"
    shutil.copytree(out, run)
    gone = _as_git_delivers(run, TINY.parent.parent.parent, "tiny")
    # Models and example maps are cache, never committed.
    assert any(f.endswith("track.joblib") for f in gone) and any(f.endswith("unet.pt") for f in gone)
    assert any(f.endswith("examples.npz") for f in gone)
    assert list(run.rglob("done.json")), "the harsh case keeps every done.json"
    before = json.loads((out / "summary.json").read_text())

    run_comparison(config, run, progress=False, config_path=str(TINY))

    log = (run / "log.txt").read_text()
    for track in config.tracks:
        # Each step says why it is recomputed.
        assert f"fold 0 {track.name}: evaluating (" in log
        assert "is missing)" in log
    text = (run / "report.md").read_text()
    assert "Not drawn" not in text
    for key in FIGURES:  # the data-regime curve only where the config asks for one
        assert (f"![{key}](figures/" in text) == (key != "data_regime"), key
    assert len([p for p in (run / "figures").glob("probability_maps_*.png")]) >= 1
    after = json.loads((run / "summary.json").read_text())
    assert _without_timings(after) == _without_timings(before)


def test_second_run_computes_no_step_and_writes_the_same_summary(tiny_run, tmp_path):
    import shutil

    config, out = tiny_run
    run = tmp_path / "tiny"
    shutil.copytree(out, run)
    markers = {p: p.read_text() for p in run.rglob("done.json")}
    first = (run / "summary.json").read_text()
    log_start = len((run / "log.txt").read_text())

    run_comparison(config, run, progress=False, config_path=str(TINY))

    new_log = (run / "log.txt").read_text()[log_start:]
    assert new_log.count("cached, skipped") == len(config.tracks)
    assert "training on" not in new_log and "evaluating" not in new_log
    assert markers == {p: p.read_text() for p in run.rglob("done.json")}
    assert (run / "summary.json").read_text() == first


def test_report_with_nothing_to_draw_says_so(tiny_run, tmp_path):
    import shutil

    from gitract.cli import main

    _, out = tiny_run
    run = tmp_path / "published"
    shutil.copytree(out, run)
    shutil.rmtree(run / "steps")  # a committed report: no cache
    # The maps drawn while the cache was there are kept (a committed run holds them).
    kept = sorted(p.name for p in (run / "figures").glob("probability_maps_*.png"))
    assert kept
    before = {name: (run / "figures" / name).read_bytes() for name in kept}
    assert (run / "importance.csv").is_file() and (run / "capacity.csv").is_file()
    assert main(["report", str(run)]) == 0
    text = (run / "report.md").read_text()
    # The block models' section is read from the run tables, not from steps/.
    assert "## Block tracks: feature importance and capacity" in text
    assert all(f"(figures/{name})" in text for name in kept)
    assert "kept as they were when the report was rebuilt without it" in text
    assert before == {name: (run / "figures" / name).read_bytes() for name in kept}
    for name in kept:
        (run / "figures" / name).unlink()
    assert main(["report", str(run)]) == 0
    text = (run / "report.md").read_text()
    assert "Not drawn: no example probability maps in this run folder" in text
    assert "![threshold_sweeps](figures/" in text  # drawn from the run-level tables


def test_report_and_predict_on_unfinished_or_published_runs_end_in_one_line(
        tiny_run, tmp_path, capsys):
    import shutil

    from gitract.cli import main

    config, out = tiny_run
    run = tmp_path / "published"
    shutil.copytree(out, run)
    shutil.rmtree(run / "steps")
    assert main(["predict", str(run), "--track", config.tracks[0].name, "--data-dir",
                 str(tmp_path), "--out", str(tmp_path / "sub.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rerun the comparison" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "sub.csv").exists()
    (run / "summary.json").unlink()
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "summary.json" in err[0]


# ----------------------------------------------------------------- parallel and distributed
def _numbers(out: Path) -> dict:
    return _without_timings(json.loads((out / "summary.json").read_text()))


def test_two_joblib_workers_give_the_serial_numbers(tiny_run, tmp_path):
    from dataclasses import replace

    from gitract.utils.parallel import ParallelConfig

    config, out = tiny_run
    config = replace(config, tracks=config.tracks[:2])  # rf and lightgbm: the per-scan path
    serial = run_comparison(config, tmp_path / "serial", progress=False, report=False)
    two = run_comparison(config, tmp_path / "two", progress=False, report=False,
                         parallel=ParallelConfig(n_jobs=2))
    assert _numbers(two) == _numbers(serial)
    for name in ("metrics_per_slice.csv", "sweep.csv", "calibration.csv", "confusion.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(two / name), pd.read_csv(serial / name))
    assert "joblib, n_jobs 2" in (two / "log.txt").read_text()


def test_a_two_worker_dask_cluster_gives_the_serial_numbers(tiny_run, tmp_path):
    pytest.importorskip("dask.distributed")
    from gitract.cli import main

    config, out = tiny_run
    run = tmp_path / "dask"
    assert main(["compare", str(TINY), "--out", str(run), "--backend", "dask", "--n-jobs", "2",
                 "--no-progress"]) == 0
    assert "dask LocalCluster, 2 workers" in (run / "log.txt").read_text()
    assert _numbers(run) == _numbers(out)
    env = json.loads((run / "env.json").read_text())
    assert env["parallel"] == {"backend": "dask", "n_jobs": 2, "scheduler": None}
