"""How commands end when something goes wrong, through the command line.

Bad inputs as a new user makes them: each ends with a non-zero exit and exactly one stderr
line ``error: <file or key>: <problem>``, no traceback, and nothing half-written (no run
folder, no partial output file). Ctrl-C during ``gitract compare``: one line saying how to
resume, exit 130; the same command then resumes without recomputing a finished step, and
the run's numbers equal those of an uninterrupted run."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gitract.cli import main

#: A tiny, valid comparison: 3 phantom cases of 4 slices, two block tracks.
GOOD = {
    "name": "tiny-cli",
    "seed": 0,
    "data": {"kind": "phantom",
             "phantom": {"n_cases": 3, "n_days": 1, "n_slices": 4, "sizes": [[64, 64]]}},
    "split": {"n_folds": 1, "n_test": 1, "test_fraction": None, "val_fraction": 0.5},
    "report": {"n_example_slices": 1},
    "tracks": [
        {"name": "rf", "kind": "blocks",
         "params": {"classifier": "rf", "block_size": 9, "step": 8, "n_per_class": 10,
                    "background_cap": 20, "model_params": {"n_estimators": 5, "n_jobs": 1}}},
        {"name": "lgbm", "kind": "blocks",
         "params": {"classifier": "lightgbm", "block_size": 9, "step": 8, "n_per_class": 10,
                    "background_cap": 20, "model_params": {"n_estimators": 5, "n_jobs": 1}}},
    ],
}


@pytest.fixture(autouse=True)
def cache_env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GITRACT_CACHE", str(tmp_path_factory.getbasetemp() / "cli-cache"))


def _edit(path: str, value):
    raw = copy.deepcopy(GOOD)
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[parts[-1]] = value
    return yaml.safe_dump(raw, sort_keys=False)


def one_error_line(capsys) -> str:
    """The single stderr line of a failed command (and no traceback anywhere)."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


# ------------------------------------------------------------------ compare configs
CONFIG_CASES = [
    ("misspelt key", _edit("seeed", 1), "{cfg}: seeed: unknown key (did you mean seed?)"),
    ("unknown track kind", _edit("tracks.1.kind", "svm"),
     "{cfg}: tracks[1].kind: must be one of blocks, cnn, nnunet, unet, unetpp, deeplabv3plus, "
     "got 'svm'"),
    ("invalid YAML", "name: x\nsplit: {n_folds: 1\n", "{cfg}: line 3, column 1: invalid YAML"),
    ("n_folds: five", _edit("split.n_folds", "five"),
     "{cfg}: split.n_folds: expected an int, got 'five'"),
    ("n_cases: three", _edit("data.phantom.n_cases", "three"),
     "{cfg}: data.phantom.n_cases: expected an int, got 'three'"),
    ("seed: abc", _edit("seed", "abc"), "{cfg}: seed: expected an int, got 'abc'"),
    ("misspelt track parameter", _edit("tracks.0.params.n_per_clas", 5),
     "{cfg}: tracks[0].params.n_per_clas: unknown key (did you mean n_per_class?)"),
    ("misspelt model parameter", _edit("tracks.1.params.model_params.n_estimator", 5),
     "{cfg}: tracks[1].params.model_params.n_estimator: unknown parameter of LGBMClassifier "
     "(did you mean n_estimators?)"),
    ("bad model parameter value", _edit("tracks.0.params.model_params.n_estimators", 0),
     "{cfg}: tracks[0].params.model_params.n_estimators: must be an int in the range"),
    ("kaggle without a path", _edit("data", {"kind": "kaggle"}),
     "{cfg}: data.path: a dataset of kind 'kaggle' needs its folder here"),
    ("top level is a list", "- a\n- b\n", "{cfg}: expected a mapping of settings"),
    ("impossible split", _edit("split.n_test", 5), "{cfg}: split: "),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CONFIG_CASES],
                         ids=[c[0] for c in CONFIG_CASES])
def test_bad_compare_configs_end_in_one_line(tmp_path, capsys, text, expected):
    cfg = tmp_path / "x.yaml"
    cfg.write_text(text)
    out = tmp_path / "run"
    assert main(["compare", str(cfg), "--out", str(out), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: " + expected.format(cfg=cfg)), line
    assert not out.exists()  # checked before the run folder is made


@pytest.mark.parametrize(("argv", "expected"), [
    (["--set", "tracks.rff.params.step=4"],
     "error: --set: tracks.rff.params.step: no track named 'rff' (did you mean rf?)"),
    (["--set", "split.n_folds=two"], "error: --set: split.n_folds: expected an int, got 'two'"),
    (["--set", "tracks.rf.params.model_params.max_dept=3"],
     "error: --set: tracks.rf.params.model_params.max_dept: unknown parameter of "
     "RandomForestClassifier (did you mean max_depth?)"),
    (["--set", "seed"], "error: --set: seed: expected KEY=VALUE"),
])
def test_bad_set_overrides_end_in_one_line(tmp_path, capsys, argv, expected):
    cfg = tmp_path / "x.yaml"
    cfg.write_text(yaml.safe_dump(GOOD))
    out = tmp_path / "run"
    assert main(["compare", str(cfg), "--out", str(out), *argv]) == 2
    assert one_error_line(capsys).startswith(expected)
    assert not out.exists()


def test_a_missing_config_file(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope.yaml")]) == 2
    assert one_error_line(capsys) == f"error: {tmp_path / 'nope.yaml'}: no such config file"


def test_blocks_evaluate_kaggle_without_path(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["blocks", "evaluate", "--data", "kaggle", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: --path: data.path: a dataset of kind 'kaggle' needs")
    assert not out.exists()


# -------------------------------------------------------------- predict and report
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished two-track run (rf and a tiny U-Net) and a folder of unseen scans."""
    pytest.importorskip("torch")
    from gitract.compare import run_comparison
    from gitract.config import config_from_dict
    from gitract.data.phantom import PhantomConfig, write_phantom

    base = tmp_path_factory.mktemp("trained")
    old = os.environ.get("GITRACT_CACHE")
    os.environ["GITRACT_CACHE"] = str(base / "cache")
    try:
        raw = copy.deepcopy(GOOD)
        raw["tracks"] = [raw["tracks"][0], {
            "name": "unet", "kind": "unet",
            "params": {"image_size": 32, "base_channels": 4, "depth": 2, "max_epochs": 1,
                       "batch_size": 4, "num_threads": 1, "device": "cpu"}}]
        run = run_comparison(config_from_dict(raw), base / "run", progress=False,
                             report=False)
    finally:
        if old is None:
            del os.environ["GITRACT_CACHE"]
        else:
            os.environ["GITRACT_CACHE"] = old
    data = write_phantom(base / "unseen", PhantomConfig(n_cases=1, n_days=1, n_slices=4,
                                                        sizes=((64, 64),), seed=3))
    return run, data


def _damage(run: Path, what: str) -> str:
    """Damage a copy of a trained run; returns the file the error must name."""
    model = run / "steps" / "fold0"
    target = {"track.joblib": model / "rf" / "model" / "track.joblib",
              "unet.pt": model / "unet" / "model" / "unet.pt",
              "metrics.json": model / "rf" / "eval" / "metrics.json"}
    kind, name = what.split(" ", 1)
    path = target[name]
    if kind == "deleted":
        path.unlink()
    elif kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:  # garbled: same size, so only reading the file can tell
        path.write_bytes(b"\0" * path.stat().st_size)
    return path.name


@pytest.mark.parametrize(("what", "track", "expected"), [
    ("deleted track.joblib", "rf", "track.joblib is missing"),
    ("truncated track.joblib", "rf", "track.joblib has"),
    ("garbled track.joblib", "rf", "track.joblib: cannot read the trained track"),
    ("deleted unet.pt", "unet", "unet.pt is missing"),
    ("truncated unet.pt", "unet", "unet.pt has"),
    ("garbled unet.pt", "unet", "unet.pt: cannot read the checkpoint"),
    ("garbled metrics.json", "rf", "metrics.json: cannot read it"),
])
def test_predict_with_a_damaged_model_ends_in_one_line(trained, tmp_path, capsys, what,
                                                       track, expected):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    _damage(run, what)
    sub = tmp_path / "sub.csv"
    assert main(["predict", str(run), "--track", track, "--data-dir", str(trained[1]),
                 "--images-subdir", "train", "--out", str(sub)]) == 2
    line = one_error_line(capsys)
    assert expected in line and str(run) in line, line
    assert not sub.exists() and not list(tmp_path.glob(".sub.csv*"))


def test_predict_reads_test_by_default_and_names_a_missing_folder(trained, tmp_path, capsys):
    sub = tmp_path / "sub.csv"
    assert main(["predict", str(trained[0]), "--track", "rf", "--data-dir", str(trained[1]),
                 "--out", str(sub)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {trained[1] / 'test'}: no such folder")
    assert "--images-subdir" in line and not sub.exists()


def test_report_on_a_half_finished_run_ends_in_one_line(tmp_path, capsys):
    from gitract.compare import run_comparison
    from gitract.compare._run import RunInterrupted
    from gitract.config import config_from_dict

    run = tmp_path / "half"
    with pytest.raises(RunInterrupted):
        run_comparison(config_from_dict(GOOD), run, stop_after=1, progress=False)
    assert main(["report", str(run)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {run / 'summary.json'}: missing; the run has not finished")
    assert not (run / "report.md").exists()
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert one_error_line(capsys) == f"error: {tmp_path / 'nowhere'}: no such run folder"


# ------------------------------------------------------------ the generic ending
def test_an_unexpected_error_is_one_line_unless_debug(monkeypatch, capsys):
    import gitract.commands.report as command

    def boom(args):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(command, "run", boom)
    assert main(["report", "x"]) == 1
    line = one_error_line(capsys)
    assert line == ("error: unexpected: RuntimeError: something broke (rerun with --debug "
                    "for the traceback, and report it)")
    with pytest.raises(RuntimeError, match="broke"):
        main(["report", "x", "--debug"])


def test_debug_shows_the_traceback_of_a_known_problem(tmp_path, capsys):
    assert main(["--debug", "compare", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")


# ------------------------------------------------------------------- Ctrl-C
_TIMING_KEYS = {"fit_s", "ms_per_slice", "seconds", "finished", "stages"}


def _without_timings(obj):
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k not in _TIMING_KEYS}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child needs POSIX")
def test_ctrl_c_ends_in_one_line_and_the_same_command_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GITRACT_CACHE", str(tmp_path / "cache"))
    cfg = tmp_path / "x.yaml"
    cfg.write_text(yaml.safe_dump(GOOD))
    out = tmp_path / "run"
    argv = ["compare", str(cfg), "--out", str(out)]
    # The child is `gitract compare` whose aggregation step first says it has begun and
    # then waits: the interrupt lands mid-run however loaded the machine is (waiting for a
    # step's file and signalling raced the rest of the tiny run on a busy machine).
    ready = tmp_path / "aggregating"
    # The child restores Python's Ctrl-C handler: started from a non-interactive shell's
    # background job (nohup ... &) it would inherit SIGINT ignored and never see the signal.
    child = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from pathlib import Path\n"
        "import gitract.compare._run as run\n"
        "original = run.aggregate_run\n"
        "def waiting(*args, **kwargs):\n"
        f"    Path({str(ready)!r}).write_text('')\n"
        "    time.sleep(120)\n"
        "    return original(*args, **kwargs)\n"
        "run.aggregate_run = waiting\n"
        "from gitract.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", child, *argv], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = out / "steps" / "fold0" / "rf" / "eval" / "done.json"
    try:
        deadline = time.monotonic() + 300
        while not ready.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.is_file() and first.is_file(), proc.communicate(timeout=60)
        proc.send_signal(signal.SIGINT)  # every step is done, the summary not yet written
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a failed wait leaves no child behind
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"interrupted: finished steps are kept in {out}; to resume, run the same command "
        f"again: gitract {' '.join(argv)}"]
    assert not (out / "summary.json").exists()
    log = (out / "log.txt").read_text()
    assert "interrupted; finished steps are kept" in log
    marker = first.read_text()

    # The same command resumes (-v: the log lines on the console as well).
    assert main([*argv, "-v"]) == 0
    console = capsys.readouterr().err
    assert "fold 0 rf: cached, skipped" in console
    assert "fold 0 rf: cached, skipped" in (out / "log.txt").read_text()
    assert first.read_text() == marker  # not recomputed
    assert "training on" not in console.split("fold 0 rf: cached, skipped")[0]

    reference = tmp_path / "reference"
    assert main(["compare", str(cfg), "--out", str(reference)]) == 0
    assert capsys.readouterr().err == ""  # no -v: a run that goes well says nothing there
    numbers = [_without_timings(json.loads((d / "summary.json").read_text()))
               for d in (out, reference)]
    assert numbers[0] == numbers[1]
    for name in ("metrics_per_slice.csv", "metrics_per_case.csv", "sweep.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / name), pd.read_csv(reference / name))
    # env.json says where and on what the run ran.
    env = json.loads((out / "env.json").read_text())
    assert {"git_sha", "git_dirty", "cuda", "cudnn", "device"} <= set(env)
    assert env["data"]["n_files"] == 3 * 4 and env["data"]["n_scans"] == 3
    assert len(env["data"]["sha1"]) == 16
