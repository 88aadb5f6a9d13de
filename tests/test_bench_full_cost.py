"""``experiments/bench_full_cost.py``: the extrapolation arithmetic on hand-made
throughputs, and a smoke run of the script."""

import doctest
import importlib.util
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "experiments" / "bench_full_cost.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_full_cost", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_full_cost"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_full_cost", None)


EVALUATION = {"read": 0.01, "read_png": 0.02, "sweep": 0.8, "postprocess": 2.0, "score": 0.4}

#: One track of each family, with round hand-made throughputs.
TRACKS = {
    "lgbm": {"family": "blocks", "units": {
        "featurise_s_per_mpx": 0.5, "blocks_per_slice": 150.0, "max_train_blocks": 300_000,
        "fit": {"n": [1000, 4000], "s": [1.0, 4.0], "law": "n"},
        "predict": {"n": [1000, 4000], "s_per_mpx": [1.0, 1.0], "growth": "none"}}},
    "rf": {"family": "blocks", "units": {
        "featurise_s_per_mpx": 0.5, "blocks_per_slice": 150.0, "max_train_blocks": None,
        "fit": {"n": [1000, 4000], "s": [1.0, 5.0], "law": "n log n"},
        "predict": {"n": [1000, 4000], "s_per_mpx": [1.0, 1.2], "growth": "log"}}},
    "cnn": {"family": "cnn", "units": {
        "featurise_s_per_mpx": 0.1, "blocks_per_slice": 150.0, "max_train_blocks": 40_000,
        "epochs": 20, "batch_size": 512, "cpu_s_per_block_epoch": 1.6e-3,
        "flop_per_block_epoch": 3.6e7, "predict_s_per_mpx": 1.2, "flop_per_mpx": 7e10}},
    "unet": {"family": "net", "units": {
        "batch_size": 16, "max_steps": 40_000, "max_epochs": None, "predict_batch_size": 8,
        "prepare_s_per_mpx": 0.1, "cpu_step_s": 15.0, "flop_per_step": 1.8e12,
        "cpu_forward_s": 0.3, "flop_per_slice": 3.8e10}},
    "nn2d": {"family": "nnunet", "units": {
        "configuration": "2d", "epochs": 1000, "iterations_per_epoch": 250,
        "val_iterations_per_epoch": 50, "cpu_iteration_s": 300.0,
        "cpu_predict_s_per_slice": 17.0, "flop_per_slice_predict": 2.4e11,
        "patches_per_slice": 5.0, "prepare_s_per_mpx": 0.3}},
}


def _machines(bench, tflops=25.0):
    cpu = bench.Machine(name="A", cores=2, n_jobs=1)
    gpu = bench.Machine(name="B", cores=16, n_jobs=16, gpu="test GPU", gpu_tflops=tflops,
                        gpu_step_overhead_s=0.003,
                        nnunet_epoch_s={"2d": 40.0, "3d_fullres": 48.0})
    return cpu, gpu


def _estimate(bench, data, machine):
    return bench.estimate(TRACKS, EVALUATION, 5.0, data, machine, measured_cores=2)


def test_doctests(bench):
    assert doctest.testmod(bench).failed == 0


def test_fold_slices_add_up_to_the_data_used(bench):
    data = bench.FullData(n_excluded_scans=2)
    assert sum(data.fold_slices()) == pytest.approx(data.used_slices)
    assert data.n_slices == 38_496 and data.n_scans == 274
    assert data.used_slices == pytest.approx(38_496 * 272 / 274)


@pytest.mark.parametrize("which", [0, 1])
def test_seeds_multiply_every_track(bench, which):
    """Twice the seeds: twice the fits and evaluations of every track, the same per fit."""
    machine = _machines(bench)[which]
    one = _estimate(bench, bench.FullData(n_seeds=1), machine)
    two = _estimate(bench, bench.FullData(n_seeds=2), machine)
    for name in TRACKS:
        a, b = one["tracks"][name], two["tracks"][name]
        assert b["fit_h"] == pytest.approx(2 * a["fit_h"])
        assert b["evaluate_h"] == pytest.approx(2 * a["evaluate_h"])
        assert b["per_fit_h"] == pytest.approx(a["per_fit_h"])


def test_a_track_is_its_fold_work_times_folds_and_seeds(bench):
    data = bench.FullData(n_folds=5, n_seeds=3)
    cpu, _ = _machines(bench)
    est = _estimate(bench, data, cpu)
    for name, track in TRACKS.items():
        work = bench.track_work(track["family"], track["units"], EVALUATION, data)
        seconds = sum(bench.wall_seconds(w, cpu, measured_cores=2) for w in work)
        assert est["tracks"][name]["total_h"] == pytest.approx(seconds * 15 / 3600)
    assert est["total_h"] == pytest.approx(
        sum(t["total_h"] for t in est["tracks"].values()) + est["data_h"])


def test_doubling_the_folds_doubles_the_work_of_a_fold(bench):
    """Ten folds of the same validation and test cases as five (twice the cases, each of
    the same slices): every stage whose size is set by the validation and test slices or
    by a fixed budget doubles (not the forest's prediction: its trees deepen with the
    training sample, which grows with the training cases of a fold)."""
    five = bench.FullData(n_cases=85, n_folds=5, n_val_cases=8)
    ten = replace(five, n_folds=10, n_cases=170,
                  scans=tuple((w, h, 2 * n, s, p) for w, h, n, s, p in five.scans))
    assert ten.fold_slices()[1:] == pytest.approx(five.fold_slices()[1:])
    doubled = {"evaluate: predict", "evaluate: evaluate"}
    budget = {"unet": "fit: train (steps)", "nn2d": "fit: train (iterations)"}
    for machine in _machines(bench):
        base, more = _estimate(bench, five, machine), _estimate(bench, ten, machine)
        for name in TRACKS:
            stages = doubled | ({budget[name]} if name in budget else set())
            if name == "rf":
                stages -= {"evaluate: predict"}
            for stage in stages:
                assert more["tracks"][name]["stages_h"][stage] == pytest.approx(
                    2 * base["tracks"][name]["stages_h"][stage])


def test_the_gpu_assumption_changes_only_gpu_stages(bench):
    data = bench.FullData(n_seeds=3)
    cpu, gpu = _machines(bench, tflops=25.0)
    _, faster = _machines(bench, tflops=50.0)
    a, b = _estimate(bench, data, gpu), _estimate(bench, data, faster)
    assert _estimate(bench, data, cpu) == _estimate(
        bench, data, replace(cpu, gpu_tflops=50.0))  # no GPU: nothing changes
    for name, track in TRACKS.items():
        gpu_stages = {f"{w.part}: {w.stage}" for w in bench.track_work(
            track["family"], track["units"], EVALUATION, data) if w.gpu and "flop" in w.gpu}
        for stage, hours in a["tracks"][name]["stages_h"].items():
            if stage in gpu_stages:
                assert b["tracks"][name]["stages_h"][stage] < hours
            else:
                assert b["tracks"][name]["stages_h"][stage] == pytest.approx(hours)
    assert a["tracks"]["lgbm"] == b["tracks"]["lgbm"]  # a CPU track
    assert a["data_h"] == b["data_h"]


def test_gpu_flops_at_the_stated_rate(bench):
    _, gpu = _machines(bench, tflops=25.0)
    work = bench.Work("x", "fit", 100.0, "threads", {"flop": 50e12, "step": 1000},
                      host_s=2.0)
    assert bench.wall_seconds(work, gpu, measured_cores=2) == pytest.approx(2 + 2 + 3)
    nn = bench.Work("x", "fit", 1.0, "threads", {"nnunet_iteration:2d": 500})
    assert bench.wall_seconds(nn, gpu, measured_cores=2) == pytest.approx(80.0)


def test_cpu_scaling_by_mode(bench):
    cpu, gpu = _machines(bench)
    e = 0.57
    scan = bench.Work("x", "fit", 100.0, "scan")
    threads = bench.Work("x", "fit", 100.0, "threads", {"flop": 1e12})
    serial = bench.Work("x", "fit", 100.0, "serial")
    for w in (scan, threads, serial):  # machine A runs the measured figures
        assert bench.wall_seconds(w, cpu, measured_cores=2) == pytest.approx(100.0)
    assert bench.wall_seconds(scan, gpu, measured_cores=2) == pytest.approx(
        100 / bench.cpu_speedup(16, e))
    assert bench.wall_seconds(serial, gpu, measured_cores=2) == pytest.approx(100.0)
    cpu16 = replace(gpu, gpu=None)
    assert bench.wall_seconds(threads, cpu16, measured_cores=2) == pytest.approx(
        100 * 1.57 / 9.55)
    # measured on one thread: a 2-core machine gains the second core's share
    assert bench.wall_seconds(threads, cpu, measured_cores=1) == pytest.approx(100 / 1.57)


def test_growth_laws(bench):
    fit = {"n": [1000, 4000], "s": [1.0, 4.0]}
    assert bench.fit_seconds_at(8000, {**fit, "law": "n"}) == pytest.approx(8.0)
    assert bench.fit_seconds_at(8000, {**fit, "law": "n log n"}) == pytest.approx(
        4.0 * 8000 * math.log(8000) / (4000 * math.log(4000)))
    assert bench.fit_seconds_at(16000, {"n": [1000, 4000], "s": [1.0, 8.0],
                                        "law": "measured"}) == pytest.approx(8.0 * 4**1.5)
    pred = {"n": [1000, 4000], "s_per_mpx": [2.0, 1.0], "growth": "log"}
    assert bench.predict_s_at(1e6, pred) == 1.0  # a measured decrease is not carried on


def test_the_cap_of_training_blocks(bench):
    assert bench.train_blocks(1000, 150.0, None) == 150_000
    assert bench.train_blocks(1000, 150.0, 40_000) == 40_000
    assert bench.train_blocks(27_000, 1.0, 300_000) == 27_000  # fewer offered than allowed


def test_the_nets_validate_once_per_epoch(bench):
    data = bench.FullData()
    T, V, _ = data.fold_slices()
    units = TRACKS["unet"]["units"]
    work = {w.stage: w for w in bench.track_work("net", units, EVALUATION, data)}
    epochs = math.ceil(40_000 / math.ceil(T / 16))
    assert work["validation passes"].cpu_s == pytest.approx(epochs * V * 0.3)
    assert work["train (steps)"].cpu_s == pytest.approx(40_000 * 15.0)


def test_unknown_family_and_mode(bench):
    with pytest.raises(ValueError, match="family"):
        bench.track_work("svm", {}, EVALUATION, bench.FullData())
    with pytest.raises(ValueError, match="mode"):
        bench.wall_seconds(bench.Work("x", "fit", 1.0, "magic"), _machines(bench)[0],
                           measured_cores=2)


def test_smoke_run(tmp_path):
    """The script end to end on a tiny phantom (about 15 s on 2 cores)."""
    pytest.importorskip("nnunetv2", reason="the nnunet extra plans nnU-Net's tracks")
    out = tmp_path / "cost"
    run = subprocess.run([sys.executable, str(_PATH), "--smoke", "--out", str(out), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    report = json.loads(out.with_suffix(".json").read_text())
    text = out.with_suffix(".md").read_text()
    assert set(summary["A_tracks_h"]) == {t["name"] for t in _kaggle_tracks()}
    assert 0 < summary["B_total_h"] < summary["A_total_h"]
    assert report["smoke"] and "Smoke run" in text
    for needed in ("## Result", "## Measured unit throughputs", "## Assumptions", "## Method",
                   "Command: `python experiments/bench_full_cost.py --smoke"):
        assert needed in text


def _kaggle_tracks():
    import yaml

    config = _PATH.parent / "configs" / "kaggle.yaml"
    return yaml.safe_load(config.read_text())["tracks"]
