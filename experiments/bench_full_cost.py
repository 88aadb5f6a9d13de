"""The full-data cost of ``kaggle.yaml``: wall hours on two stated machines (issue 21).

Measures here, per stage and per track of a comparison config (default
``experiments/configs/kaggle.yaml``, each track with its own params and only its *budget*
shortened), unit throughputs on a small phantom written in the Kaggle layout at Kaggle
image sizes, then extrapolates them to the full Kaggle training set (the size table of
:data:`KAGGLE_SCANS`) under the config's protocol (folds, validation cases, seeds) for

- machine A, this machine: the measured figures as the engine runs by default (per-scan
  stages in one process, ``parallel.n_jobs`` 1; libraries use their own threads);
- machine B, 16 CPU cores and one GPU: per-scan stages on 16 workers and multi-threaded
  CPU stages on 16 threads, scaled by :func:`cpu_speedup` (each core added is worth
  ``--added-core-efficiency`` of the first: 0.57 from FACTS.md, "two workers 1.57x"); the
  networks' compute on the GPU from a NAMED ASSUMPTION (``--gpu-*`` options).

What is measured (seconds on this machine; per megapixel where the work follows the
pixels, so the phantom's sizes map onto the Kaggle mix; at the track's own batch and grid
for the segmentation nets):

- reads: a scan decoded from its PNGs, and again from the decoded-scan cache
  (``data.cache_scans``); the index from ``reports/bench_kaggle_size.json`` (full size);
- block tracks: training rows per slice (:func:`gitract.tracks.training_rows`: sample,
  featurise), the classifier's fit (:func:`gitract.tracks.fit_block_track`) at two
  sample sizes, prediction (the adapter's ``predict_proba_stack``) with both models;
- block CNN: the adapter's fit for ``--cnn-epochs`` epochs (seconds per block and
  epoch), its dense prediction, and their FLOPs (``torch.utils.flop_counter``);
- segmentation nets: the adapter's fit for ``--net-steps`` optimiser steps without
  validation cases (``--net-batch`` / ``--net-size``, scaled to the track's batch and
  grid by their FLOPs, counted on the ``meta`` device), preparing the slices, prediction;
- evaluation: :func:`gitract.compare.evaluate_step` for the first block
  track (threshold sweep and volume steps on a validation scan, scoring a test scan);
- nnU-Net: not trained here (its CPU iteration is minutes at its planned size): its own
  planner runs on a fingerprint of the full data (:data:`KAGGLE_SCANS`), the planned
  networks' FLOPs are counted, and the iteration costs are named assumptions (CPU: 13 s
  per iteration at 256 px patches of 2 on this machine, ``real_nnunet.yaml``; GPU:
  nnU-Net's documented A100 epoch times).

Usage::

    .venv/bin/python experiments/bench_full_cost.py [--config experiments/configs/kaggle.yaml]
        [--smoke] [--tracks NAME ...] [--gpu-tflops T] [--out reports/bench_full_cost] [--json]

On a machine shared with other work, ``--threads 1`` keeps LightGBM's and torch's OpenMP
threads from spin-waiting (the thread-stage scaling then starts from one thread).

Writes ``<out>.md`` and ``<out>.json`` atomically (default ``reports/bench_full_cost``;
``reports/_scratch/bench_full_cost_smoke`` with ``--smoke``) and prints the summary; with
``--json`` the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from gitract.paths import REPO_ROOT
from gitract.utils.io import write_text_atomic

#: The full Kaggle UW-Madison training set by image size: (width, height, slices,
#: pixel spacing in mm, slices per scan). Slices per size are the download's counts
#: (38,496 in all); spacing and slices per scan are what its file names give (every size
#: at 1.50 mm and 144 slices a scan except 276x276: 1.63 mm, 80 slices), which makes 274
#: case-days. Spacing and scan length enter only nnU-Net's plan and tile counts.
KAGGLE_SCANS: tuple[tuple[int, int, int, float, int], ...] = (
    (266, 266, 25_920, 1.50, 144),
    (360, 310, 11_232, 1.50, 144),
    (276, 276, 1_200, 1.63, 80),
    (234, 234, 144, 1.50, 144),
)
#: Slice thickness of the Kaggle scans (mm), as :mod:`gitract.data.nnunet_export` writes.
KAGGLE_THICKNESS = 3.0

#: nnU-Net's documented epoch times (250 iterations, mixed precision, validation
#: skipped, fastest of 5 epochs) on an A100 40GB: mean of Task002_Heart, Task003_Liver and
#: Task005_Prostate (2d 40.06, 39.71, 42.21 s; 3d_fullres 51.17, 44.48, 47.19 s), from
#: MIC-DKFZ/nnUNet documentation/expected_epoch_times.md (nnU-Net v1, PyTorch 1.7.1 built
#: with cuDNN 8.1). nnU-Net plans patch and batch to a fixed GPU memory budget, so an
#: epoch costs about the same whatever the dataset.
NNUNET_A100_EPOCH_S = {"2d": (40.06 + 39.71 + 42.21) / 3, "3d_fullres": (51.17 + 44.48 + 47.19) / 3}
NNUNET_DOC = "MIC-DKFZ/nnUNet documentation/expected_epoch_times.md (A100 40GB)"
#: nnU-Net on this machine's CPU (experiments/configs/real_nnunet.yaml): 13 s per
#: iteration for its plan of the real 512 px slices (an 8-stage 2d network of up to 512
#: features) trained at 256 px patches of 2, augmentation in the training process.
NNUNET_CPU_REF = {"seconds": 13.0, "patch": (256, 256), "batch": 2,
                  "features": (32, 64, 128, 256, 512, 512, 512, 512)}
NNUNET_CPU_DOC = "experiments/configs/real_nnunet.yaml (13 s/iteration, 256 px x 2, this machine)"
#: nnU-Net's export, fingerprint and preprocessing each read or write every training and
#: validation slice once: three passes of the cost of preparing a slice for the nets.
NNUNET_PREP_PASSES = 3

FAMILIES = {"blocks": "blocks", "cnn": "cnn", "unet": "net", "unetpp": "net",
            "deeplabv3plus": "net", "nnunet": "nnunet"}


# ============================================================== the arithmetic (pure)
@dataclass(frozen=True)
class FullData:
    """The full dataset and the protocol of the config, as counts.

    Attributes
    ----------
    scans : tuple of (width, height, slices, spacing_mm, slices_per_scan)
    n_cases : int
        Patients; each fold tests ``n_cases / n_folds`` of them.
    n_excluded_scans : int
        Case-days ``data.exclude`` leaves out (about one mean scan of slices each).
    n_folds, n_val_cases, n_seeds : int
        ``split.n_folds``, ``split.n_val``, ``len(seeds)``.
    """

    scans: tuple[tuple[int, int, int, float, int], ...] = KAGGLE_SCANS
    n_cases: int = 85
    n_excluded_scans: int = 0
    n_folds: int = 5
    n_val_cases: int = 8
    n_seeds: int = 1

    @property
    def n_slices(self) -> int:
        """Slices of the download."""
        return int(sum(s[2] for s in self.scans))

    @property
    def n_scans(self) -> int:
        """Case-days of the download."""
        return int(sum(round(s[2] / s[4]) for s in self.scans))

    @property
    def used_slices(self) -> float:
        """Slices the run uses: the excluded case-days counted at the mean scan length."""
        return self.n_slices * (1.0 - self.n_excluded_scans / self.n_scans)

    @property
    def mean_mpx(self) -> float:
        """Mean megapixels of a slice over the size mix.

        >>> round(FullData().mean_mpx, 4)
        0.0828
        """
        return sum(w * h * n for w, h, n, _, _ in self.scans) / self.n_slices / 1e6

    def fold_slices(self) -> tuple[float, float, float]:
        """(training, validation, test) slices of one fold: each fold tests
        ``n_cases / n_folds`` cases, validates on ``n_val_cases``, trains on the rest.

        >>> [round(x) for x in FullData(n_excluded_scans=0).fold_slices()]
        [27174, 3623, 7699]
        """
        n_test = self.n_cases / self.n_folds
        n_train = self.n_cases - n_test - self.n_val_cases
        per_case = self.used_slices / self.n_cases
        return n_train * per_case, self.n_val_cases * per_case, n_test * per_case


@dataclass(frozen=True)
class Machine:
    """A machine the run is estimated for.

    Attributes
    ----------
    name : str
    cores : int
        CPU cores (threads of a multi-threaded stage).
    n_jobs : int
        Workers of the per-scan stages (``--n-jobs``; at most ``cores`` count).
    gpu : str or None
        The GPU's name; None: CPU only (every stage on the CPU).
    gpu_tflops : float
        Sustained mixed-precision TFLOP/s of network training and inference on the GPU.
    gpu_step_overhead_s : float
        Seconds per optimiser step or predicted batch beyond the FLOPs (launches, Python).
    nnunet_epoch_s : mapping
        GPU seconds per nnU-Net epoch of 250 iterations, by configuration.
    added_core_efficiency : float
        Speed-up each core beyond the first adds, as a share of one core's speed.
    """

    name: str
    cores: int
    n_jobs: int = 1
    gpu: str | None = None
    gpu_tflops: float = math.nan
    gpu_step_overhead_s: float = 0.0
    nnunet_epoch_s: Mapping[str, float] = field(default_factory=dict)
    added_core_efficiency: float = 0.57

    def gpu_unit_seconds(self, unit: str) -> float:
        """Seconds of one unit of GPU work: ``flop``, ``step`` or
        ``nnunet_iteration:<configuration>``."""
        if unit == "flop":
            return 1.0 / (self.gpu_tflops * 1e12)
        if unit == "step":
            return self.gpu_step_overhead_s
        if unit.startswith("nnunet_iteration:"):
            return self.nnunet_epoch_s[unit.split(":", 1)[1]] / 250.0
        raise ValueError(f"unknown GPU unit {unit!r}")


@dataclass(frozen=True)
class Work:
    """One stage's work for one fit and evaluation (one fold, one seed).

    Attributes
    ----------
    stage : str
    part : {"fit", "evaluate", "data"}
    cpu_s : float
        Seconds on the measuring machine (one process; its threads).
    mode : {"scan", "threads", "serial"}
        How the CPU work spreads: over per-scan workers, over a library's threads, or not.
    gpu : mapping or None
        The same work as GPU units (:meth:`Machine.gpu_unit_seconds`) where it runs on a
        GPU when the machine has one.
    host_s : float
        CPU seconds (one process) that stay on the CPU beside the GPU's part (a net's
        input and output resizing when it predicts); part of ``cpu_s`` on a CPU.
    """

    stage: str
    part: str
    cpu_s: float
    mode: str = "scan"
    gpu: Mapping[str, float] | None = None
    host_s: float = 0.0


def cpu_speedup(cores: int, efficiency: float) -> float:
    """Speed-up of ``cores`` over one core when each added core is worth ``efficiency``
    of the first: ``1 + (cores - 1) * efficiency``.

    >>> round(cpu_speedup(2, 0.57), 2), round(cpu_speedup(16, 0.57), 2)
    (1.57, 9.55)
    """
    return 1.0 + (max(int(cores), 1) - 1) * float(efficiency)


def wall_seconds(work: Work, machine: Machine, *, measured_cores: int) -> float:
    """Seconds ``work`` takes on ``machine`` (measured with one per-scan worker and
    ``measured_cores`` threads)."""
    if work.gpu is not None and machine.gpu is not None:
        return work.host_s + float(sum(n * machine.gpu_unit_seconds(u)
                                       for u, n in work.gpu.items()))
    e = machine.added_core_efficiency
    if work.mode == "scan":
        return work.cpu_s / cpu_speedup(min(machine.n_jobs, machine.cores), e)
    if work.mode == "threads":
        return work.cpu_s * cpu_speedup(measured_cores, e) / cpu_speedup(machine.cores, e)
    if work.mode == "serial":
        return work.cpu_s
    raise ValueError(f"unknown mode {work.mode!r}")


def train_blocks(n_slices: float, per_slice: float, cap: int | None) -> float:
    """Training blocks of ``n_slices`` slices that each offer ``per_slice`` blocks, under
    ``max_train_blocks`` (each slice keeps at most ``ceil(cap / n_slices)``, the rule of
    :func:`gitract.tracks._block_track.per_slice_limit`).

    >>> train_blocks(27174, 200.0, 300000)
    326088.0
    """
    if cap is None:
        return n_slices * per_slice
    return n_slices * min(float(math.ceil(cap / max(n_slices, 1))), per_slice)


def fit_seconds_at(n: float, fit: Mapping[str, Any]) -> float:
    """Classifier fit seconds at ``n`` blocks from the two measured ``fit["n"]``,
    ``fit["s"]``, by its growth law ``fit["law"]``: ``"n"`` (LightGBM: histograms, fixed
    rounds), ``"n log n"`` (random forest: sorting per node, depth ~ log n) or
    ``"measured"`` (the exponent of the two points).

    >>> fit_seconds_at(4000, {"n": [1000, 2000], "s": [1.0, 2.0], "law": "n"})
    4.0
    """
    (n1, n2), (t1, t2) = fit["n"], fit["s"]
    if fit["law"] == "n":
        return t2 * n / n2
    if fit["law"] == "n log n":
        return t2 * (n * math.log(n)) / (n2 * math.log(n2))
    if fit["law"] == "measured":
        b = math.log(max(t2, 1e-9) / max(t1, 1e-9)) / math.log(n2 / n1)
        return t2 * (n / n2) ** min(max(b, 0.5), 2.0)
    raise ValueError(f"unknown growth law {fit['law']!r}")


def predict_s_at(n: float, pred: Mapping[str, Any]) -> float:
    """Prediction seconds per megapixel of a model fitted on ``n`` blocks: the larger
    measurement plus, for ``pred["growth"] == "log"`` (a forest deepens as ~log n), its
    increase per doubling carried on to ``n`` (never negative).

    >>> predict_s_at(4000, {"n": [1000, 2000], "s_per_mpx": [1.0, 1.5], "growth": "log"})
    2.0
    """
    (n1, n2), (p1, p2) = pred["n"], pred["s_per_mpx"]
    if pred.get("growth") != "log" or n <= n2:
        return p2
    return p2 + max(p2 - p1, 0.0) * math.log(n / n2) / math.log(n2 / n1)


def _epochs(max_steps: int | None, max_epochs: int | None, steps_per_epoch: int) -> int:
    if max_steps is None:
        return int(max_epochs)
    epochs = math.ceil(max_steps / steps_per_epoch)
    return epochs if max_epochs is None else min(epochs, int(max_epochs))


def track_work(family: str, units: Mapping[str, Any], evaluation: Mapping[str, float],
               data: FullData) -> list[Work]:
    """The work of one fit and its evaluation (one fold, one seed) of a track.

    Parameters
    ----------
    family : {"blocks", "cnn", "net", "nnunet"}
    units : mapping
        The track's measured throughputs (see :func:`measure_tracks`).
    evaluation : mapping
        Per-megapixel seconds of the per-scan stages every track shares: ``read``
        (a cached scan), ``sweep`` and ``postprocess`` (per validation slice), ``score``
        (per test slice).
    data : FullData

    Returns
    -------
    list of Work
        Reads: training scans for the fit (and the validation scans for the nets), then
        the evaluation's (validation twice: threshold sweep, volume steps; training once:
        the z-range; test once); predictions: validation twice, test once.
    """
    T, V, S = data.fold_slices()
    P = data.mean_mpx
    read = evaluation["read"] * P
    ev = [Work("read", "evaluate", (2 * V + T + S) * read),
          Work("evaluate", "evaluate", (V * (evaluation["sweep"] + evaluation["postprocess"])
                                        + S * evaluation["score"]) * P)]
    n_pred = 2 * V + S
    if family == "blocks":
        n = train_blocks(T, units["blocks_per_slice"], units["max_train_blocks"])
        return [Work("read", "fit", T * read),
                Work("featurise", "fit", T * units["featurise_s_per_mpx"] * P),
                Work("classifier fit", "fit", fit_seconds_at(n, units["fit"]), "threads"),
                Work("predict", "evaluate", n_pred * predict_s_at(n, units["predict"]) * P),
                *ev]
    if family == "cnn":
        n = train_blocks(T, units["blocks_per_slice"], units["max_train_blocks"])
        e = units["epochs"]
        return [Work("read", "fit", T * read),
                Work("featurise", "fit", T * units["featurise_s_per_mpx"] * P),
                Work("train (epochs)", "fit", e * n * units["cpu_s_per_block_epoch"],
                     "threads", {"flop": e * n * units["flop_per_block_epoch"],
                                 "step": e * math.ceil(n / units["batch_size"])}),
                Work("predict", "evaluate", n_pred * units["predict_s_per_mpx"] * P,
                     "threads", {"flop": n_pred * units["flop_per_mpx"] * P, "step": n_pred}),
                *ev]
    if family == "net":
        steps_per_epoch = math.ceil(T / units["batch_size"])
        epochs = _epochs(units["max_steps"], units["max_epochs"], steps_per_epoch)
        steps = units["max_steps"] or epochs * steps_per_epoch
        batches = math.ceil(V / units["predict_batch_size"])
        return [Work("prepare slices", "fit", (T + V) * units["prepare_s_per_mpx"] * P,
                     "serial"),
                Work("train (steps)", "fit", steps * units["cpu_step_s"], "threads",
                     {"flop": steps * units["flop_per_step"], "step": steps}),
                Work("validation passes", "fit", epochs * V * units["cpu_forward_s"],
                     "threads", {"flop": epochs * V * units["flop_per_slice"],
                                 "step": epochs * batches}),
                Work("predict", "evaluate", n_pred * units["cpu_forward_s"], "threads",
                     {"flop": n_pred * units["flop_per_slice"],
                      "step": math.ceil(n_pred / units["predict_batch_size"])},
                     host_s=n_pred * units["prepare_s_per_mpx"] * P),
                *ev]
    if family == "nnunet":
        cfg, epochs = units["configuration"], units["epochs"]
        # Validation iterations are forward passes only: about a third of a training one.
        iterations = epochs * (units["iterations_per_epoch"]
                               + units["val_iterations_per_epoch"] / 3.0)
        return [Work("prepare (export, plan, preprocess)", "fit",
                     (T + V) * units["prepare_s_per_mpx"] * P, "serial"),
                Work("train (iterations)", "fit", iterations * units["cpu_iteration_s"],
                     "threads", {f"nnunet_iteration:{cfg}": iterations}),
                Work("predict", "evaluate", n_pred * units["cpu_predict_s_per_slice"],
                     "threads", {"flop": n_pred * units["flop_per_slice_predict"],
                                 "step": n_pred * units["patches_per_slice"]},
                     host_s=n_pred * units["prepare_s_per_mpx"] / NNUNET_PREP_PASSES * P),
                *ev]
    raise ValueError(f"unknown family {family!r}")


def data_work(evaluation: Mapping[str, float], index_s: float, data: FullData) -> list[Work]:
    """Work done once per run: the index, decoding every scan's PNGs the first time (the
    decoded-scan cache serves later reads), and the example slices each seed's run
    chooses from fold 0's test scans."""
    _, _, S = data.fold_slices()
    P = data.mean_mpx
    return [Work("index", "data", index_s, "serial"),
            Work("first decode of every scan", "data",
                 data.used_slices * (evaluation["read_png"] - evaluation["read"]) * P),
            Work("example slices", "data", data.n_seeds * S * evaluation["read"] * P)]


def estimate(tracks: Mapping[str, Mapping[str, Any]], evaluation: Mapping[str, float],
             index_s: float, data: FullData, machine: Machine, *,
             measured_cores: int) -> dict:
    """Wall hours of the whole run on ``machine``: every track fitted and evaluated
    ``n_folds x n_seeds`` times, plus the once-per-run data stages.

    Parameters
    ----------
    tracks : mapping
        ``{name: {"family": ..., "units": {...}}}``.
    evaluation, data, machine
        See :func:`track_work`, :class:`FullData`, :class:`Machine`.
    index_s : float
        Seconds to index the full data.
    measured_cores : int
        Threads of the measuring machine's multi-threaded stages.

    Returns
    -------
    dict
        ``tracks: {name: {fit_h, evaluate_h, total_h, per_fit_h, stages_h}}``,
        ``data_h``, ``total_h``.
    """
    runs = data.n_folds * data.n_seeds
    out: dict[str, Any] = {"tracks": {}}
    total = 0.0
    for name, track in tracks.items():
        stages: dict[str, float] = {}
        parts = {"fit": 0.0, "evaluate": 0.0}
        for w in track_work(track["family"], track["units"], evaluation, data):
            s = wall_seconds(w, machine, measured_cores=measured_cores) * runs / 3600.0
            key = f"{w.part}: {w.stage}"
            stages[key] = stages.get(key, 0.0) + s
            parts[w.part] += s
        hours = parts["fit"] + parts["evaluate"]
        out["tracks"][name] = {"fit_h": parts["fit"], "evaluate_h": parts["evaluate"],
                               "total_h": hours, "per_fit_h": parts["fit"] / runs,
                               "stages_h": stages}
        total += hours
    data_h = sum(wall_seconds(w, machine, measured_cores=measured_cores)
                 for w in data_work(evaluation, index_s, data)) / 3600.0
    out["data_h"] = data_h
    out["total_h"] = total + data_h
    return out


# ================================================================== measurements
def _family(track) -> str:
    """The cost family of a config's track (a ``blocks`` track may use the CNN)."""
    if track.kind == "blocks" and track.settings.classifier == "cnn":
        return "cnn"
    return FAMILIES[track.kind]


def _log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _mpx(stack) -> float:
    return stack.n_slices * stack.shape[0] * stack.shape[1] / 1e6


def _flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def _step_flops(net, batch: int, channels: int, size: Sequence[int]) -> float:
    """FLOPs of one training step (forward and backward) of ``net`` on the meta device."""
    import torch

    meta = copy.deepcopy(net).to("meta").train()

    def step():
        out = meta(torch.empty((batch, channels, *size), device="meta"))
        outs = out if isinstance(out, (list, tuple)) else [out]
        sum(o.float().sum() for o in outs).backward()

    return _flops(step)


def _forward_flops(net, channels: int, size: Sequence[int]) -> float:
    import torch

    meta = copy.deepcopy(net).to("meta").eval()
    with torch.no_grad():
        return _flops(lambda: meta(torch.empty((1, channels, *size), device="meta")))


def measure_reads(index_png, index_cached, keys: Sequence[str]) -> dict:
    """Seconds per megapixel to read a scan from its PNGs and from the decoded cache
    (the first cached read writes the cache; the second is timed)."""
    png = cached = mpx = 0.0
    for key in keys:
        t0 = time.perf_counter()
        stack = index_png.read(key)
        png += time.perf_counter() - t0
        mpx += _mpx(stack)
        index_cached.read(key)  # fills the cache
        t0 = time.perf_counter()
        index_cached.read(key)
        cached += time.perf_counter() - t0
    return {"read_png": png / mpx, "read": cached / mpx, "mpx": mpx}


def _with_threads(settings, threads: int | None, key: str):
    """``settings`` with its classifier's threads (``model_params[key]``) set, if given."""
    if threads is None:
        return settings
    return replace(settings, model_params={**settings.model_params, key: threads})


def measure_blocks(tracks, index, split, *, seed: int, threads: int | None = None) -> dict:
    """rf / lightgbm tracks: training rows once per featurizer, the classifier at two
    sample sizes, prediction of the test scan with both models."""
    from gitract.tracks import BlockTrackAdapter, fit_block_track, training_rows

    train, _, test = split
    out, rows_by = {}, {}
    T_meas = sum(index.ref(k).n_slices for k in train)
    test_stack = index.read(test[0])
    for track in tracks:
        if track.settings.stages > 1 or track.settings.search_trials:
            raise SystemExit(f"{track.name}: auto-context stages and capacity searches are "
                             "not modelled here (one fit on the training rows is)")
        s = replace(_with_threads(track.settings, threads, "n_jobs"), random_state=seed,
                    max_train_blocks=None)
        fkey = json.dumps([s.features, s.feature_params, s.block_size, s.n_per_class,
                           s.background_cap, s.border_fraction, s.body_background],
                          sort_keys=True, default=str)
        if fkey not in rows_by:
            _log(f"{track.name}: training rows of {T_meas} slices")
            parts, mpx, feat = [], 0.0, 0.0
            for k in train:
                stack = index.read(k)
                X, y, sec = training_rows(stack, s, n_train_slices=T_meas)
                parts.append((X, y))
                feat += sec
                mpx += _mpx(stack)
            X = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts])
            rows_by[fkey] = (X, y, feat / mpx, len(y) / T_meas)
        X, y, feat_per_mpx, per_slice = rows_by[fkey]
        gen = np.random.default_rng(seed)
        n2 = len(y)
        n1 = max(n2 // 4, 50)
        small = np.sort(gen.choice(n2, size=n1, replace=False))
        fits, preds = [], []
        for idx in (small, np.arange(n2)):
            _log(f"{track.name}: fit on {len(idx)} blocks")
            fitted = fit_block_track([(X[idx], y[idx], 0.0)], s, index.classes)
            fits.append(fitted.fit_seconds)
            adapter = BlockTrackAdapter(s, random_state=seed)
            adapter.track_ = fitted
            if not preds:
                adapter.predict_proba_stack(test_stack)  # warm-up: thread pools, caches
            t0 = time.perf_counter()
            adapter.predict_proba_stack(test_stack)
            preds.append((time.perf_counter() - t0) / _mpx(test_stack))
        forest = s.classifier == "rf"
        out[track.name] = {
            "family": "blocks",
            "units": {"featurise_s_per_mpx": feat_per_mpx, "blocks_per_slice": per_slice,
                      "max_train_blocks": track.settings.max_train_blocks,
                      "fit": {"n": [int(n1), int(n2)], "s": fits,
                              "law": "n log n" if forest else "n"},
                      "predict": {"n": [int(n1), int(n2)], "s_per_mpx": preds,
                                  "growth": "log" if forest else "none"}},
            "how": (f"training_rows on {T_meas} phantom slices (sample, featurise); "
                    f"fit_block_track on {n1} and {n2} blocks; predict_proba_stack of a "
                    f"{test_stack.shape[1]}x{test_stack.shape[0]} test scan "
                    f"({test_stack.n_slices} slices) with each model"),
            "adapter": adapter,
        }
    return out


def _cnn_default(name: str):
    from gitract.models.cnn import BlockCNNClassifier

    return BlockCNNClassifier().get_params()[name]


def measure_cnn(tracks, index, split, *, seed: int, epochs: int,
                threads: int | None = None) -> dict:
    """Block CNN tracks: the adapter's fit for ``epochs`` epochs, dense prediction, FLOPs."""
    import torch

    from gitract.tracks import make_adapter

    train, val, test = split
    test_stack = index.read(test[0])
    out = {}
    for track in tracks:
        if track.settings.training != "blocks":
            raise SystemExit(f"{track.name}: only the block CNN trained on sampled blocks "
                             "(training: blocks) is modelled here")
        s = _with_threads(track.settings, threads, "num_threads")
        budget = int(s.model_params.get("max_epochs", _cnn_default("max_epochs")))
        params = {**s.model_params, "max_epochs": epochs, "device": "cpu"}
        short = replace(s, random_state=seed, model_params=params)
        adapter = make_adapter(track.kind, short, random_state=seed)
        _log(f"{track.name}: fit, {epochs} epoch(s)")
        adapter.fit(index, train, val)
        bt = adapter.track_
        model = bt.model
        n_blocks, done = bt.n_train_blocks, adapter.training["epochs"]
        mpx = sum(_mpx(index.read(k)) for k in train)
        T_meas = sum(index.ref(k).n_slices for k in train)
        net = model.net_
        bs = s.block_size
        vf = float(model.validation_fraction)
        # Two blocks: batch norm in training mode needs more than one value per channel.
        per_block = ((1 - vf) * _step_flops(net, 2, 1, (bs, bs)) / 2
                     + vf * _forward_flops(net, 1, (bs, bs)))
        adapter.predict_proba_stack(test_stack)  # warm-up
        t0 = time.perf_counter()
        adapter.predict_proba_stack(test_stack)
        pred = (time.perf_counter() - t0) / _mpx(test_stack)
        from gitract.tracks import normalize_stack

        image = normalize_stack(test_stack)[0]
        with torch.no_grad():
            dense = _flops(lambda: model.predict_proba_dense(image))
        out[track.name] = {
            "family": "cnn",
            "units": {"featurise_s_per_mpx": bt.featurize_seconds / mpx,
                      "blocks_per_slice": n_blocks / T_meas,
                      "max_train_blocks": s.max_train_blocks,
                      "epochs": budget,
                      "batch_size": int(model.batch_size),
                      "cpu_s_per_block_epoch": bt.fit_seconds / (n_blocks * done),
                      "flop_per_block_epoch": per_block,
                      "predict_s_per_mpx": pred,
                      "flop_per_mpx": dense / (image.size / 1e6)},
            "how": (f"adapter fit ({done} epoch(s) on {n_blocks} blocks of {T_meas} "
                    f"slices, validation share {vf:g}); dense predict_proba_stack of the "
                    f"test scan; FLOPs by torch.utils.flop_counter; the full run assumed to "
                    f"use all {budget} epochs (no early stop)"),
        }
    return out


def measure_nets(tracks, index, split, *, seed: int, steps: int, batch: int | None,
                 size: int | None, threads: int | None = None) -> dict:
    """Segmentation nets: the adapter's fit for ``steps`` steps without validation cases
    (step time and slice preparation), prediction of the test scan; FLOPs on ``meta``."""
    from gitract.tracks import make_adapter

    train, _, test = split
    test_stack = index.read(test[0])
    mpx = sum(_mpx(index.read(k)) for k in train)
    out = {}
    for track in tracks:
        s = track.settings
        b = s.batch_size if batch is None else batch
        g = s.image_size if size is None else size
        short = replace(s, max_steps=steps, max_epochs=None, batch_size=b, image_size=g,
                        progress=False, device="cpu", random_state=seed, max_minutes=None,
                        num_threads=threads or s.num_threads)
        adapter = make_adapter(track.kind, short, random_state=seed)
        _log(f"{track.name}: fit, {steps} steps of {b} at {g} px")
        adapter.fit(index, train, [])
        model = adapter.model_
        history = model.history_
        step_s = history.seconds / history.steps
        prepare = (model.fit_seconds_ - history.seconds) / mpx
        t0 = time.perf_counter()
        adapter.predict_proba_stack(test_stack)
        forward = (time.perf_counter() - t0) / test_stack.n_slices
        k = len(s.offsets)
        # A native grid (image_size None) counted at the full data's mean slice side.
        track_size = (s.image_size, s.image_size) if s.image_size else (288, 288)
        flop_step = _step_flops(model.net_, s.batch_size, k, track_size)
        flop_step_meas = _step_flops(model.net_, b, k, (g, g) if g else track_size)
        flop_fwd = _forward_flops(model.net_, k, track_size)
        flop_fwd_meas = _forward_flops(model.net_, k, (g, g) if g else track_size)
        out[track.name] = {
            "family": "net",
            "units": {"batch_size": s.batch_size, "max_steps": s.max_steps,
                      "max_epochs": s.max_epochs,
                      "predict_batch_size": s.predict_batch_size,
                      "prepare_s_per_mpx": prepare,
                      "cpu_step_s": step_s * flop_step / flop_step_meas,
                      "flop_per_step": flop_step,
                      "cpu_forward_s": forward * flop_fwd / flop_fwd_meas,
                      "flop_per_slice": flop_fwd},
            "measured": {"step_s": step_s, "batch": b, "size": g, "forward_s": forward,
                         "cpu_train_gflops": flop_step_meas / step_s / 1e9,
                         "cpu_forward_gflops": flop_fwd_meas / forward / 1e9},
            "how": (f"adapter fit: {history.steps} steps of {b} slices at {g} px (first "
                    f"step included), no validation cases; scaled to batch {s.batch_size} "
                    f"at {s.image_size} px by FLOPs (meta device); prediction of the test "
                    f"scan ({test_stack.n_slices} slices) scaled the same way"),
        }
    return out


def measure_evaluation(adapter, track, index, split, out_dir: Path, config) -> dict:
    """Per-megapixel seconds of the threshold sweep and volume steps (validation) and of
    scoring (test): :func:`evaluate_step` on one trained track."""
    from gitract.compare import evaluate_step
    from gitract.metrics import MetricConventions

    train, val, test = split
    _log(f"evaluation stages with {track.name}")
    directory = out_dir / "eval"
    evaluate_step(adapter, track.name, 0, index, val, test, directory, "bench",
                  MetricConventions.from_mapping(config.metrics), [],
                  config.report.calibration_bins, track.tuning.options(config.min_sizes),
                  config.parallel, train_keys=train)
    stages = json.loads((directory / "metrics.json").read_text())["stages"]
    mpx_v = sum(_mpx(index.read(k)) for k in val)
    mpx_s = sum(_mpx(index.read(k)) for k in test)
    return {"sweep": stages["validate"]["sweep_s"] / mpx_v,
            "postprocess": stages["postprocess"]["sweep_s"] / mpx_v,
            "score": stages["test"]["score_s"] / mpx_s,
            "how": f"evaluate_step of {track.name}: {len(val)} validation scan(s) "
                   f"({mpx_v:.2f} Mpx), {len(test)} test scan(s) ({mpx_s:.2f} Mpx)"}


def _plan_nnunet(work: Path, data: FullData) -> dict:
    """nnU-Net's plans for a fingerprint of the full data (every case-day's shape and
    spacing; intensities do not change the plan). Needs the ``nnunet`` extra."""
    from gitract.models.nnunet import use_folders

    use_folders(work)
    from gitract.constants import CLASSES
    from gitract.data.nnunet_export import FILE_ENDING, dataset_json, write_volume

    name = "Dataset501_gitract"
    raw = work / "raw" / name
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).mkdir(parents=True, exist_ok=True)
    shapes, spacings = [], []
    for w, h, n, sp, per in data.scans:
        for _ in range(round(n / per)):
            shapes.append([per, h, w])
            spacings.append([KAGGLE_THICKNESS, sp, sp])
    meta = dataset_json(CLASSES, len(shapes))
    # The planner opens one image to choose its reader; the fingerprint gives the rest.
    affine = np.diag([1.5, 1.5, KAGGLE_THICKNESS, 1.0])
    write_volume(np.zeros((4, 8, 8), np.float32), affine, raw / "imagesTr" / f"s_0000{FILE_ENDING}")
    write_volume(np.zeros((4, 8, 8), np.uint8), affine, raw / "labelsTr" / f"s{FILE_ENDING}")
    meta["dataset"] = {f"s{i}": {"images": [f"imagesTr/s_0000{FILE_ENDING}"],
                                 "label": f"labelsTr/s{FILE_ENDING}"} for i in range(len(shapes))}
    (raw / "dataset.json").write_text(json.dumps(meta))
    pre = work / "preprocessed" / name
    pre.mkdir(parents=True, exist_ok=True)
    intensity = {"max": 1.0, "mean": 0.5, "median": 0.5, "min": 0.0, "percentile_00_5": 0.0,
                 "percentile_99_5": 1.0, "std": 0.2}
    (pre / "dataset_fingerprint.json").write_text(json.dumps({
        "spacings": spacings, "shapes_after_crop": shapes,
        "foreground_intensity_properties_per_channel": {"0": intensity},
        "median_relative_size_after_cropping": 1.0}))
    from nnunetv2.experiment_planning.plan_and_preprocess_api import plan_experiment_dataset

    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        plan_experiment_dataset(501)
    return json.loads((pre / "nnUNetPlans.json").read_text())


def measure_nnunet(tracks, data: FullData, work: Path) -> tuple[dict, dict]:
    """nnU-Net tracks from its plan for the full data: FLOPs of a training iteration and
    of the sliding-window prediction per slice; CPU iteration scaled by FLOPs from
    :data:`NNUNET_CPU_REF`. Returns ``(tracks, plan summary)``."""
    import torch
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    _log("nnU-Net: plan for the full data, FLOPs")
    plans = _plan_nnunet(work, data)
    pm = PlansManager(plans)
    n_heads = 3  # one sigmoid region per class
    summary: dict[str, Any] = {}
    for cfg in ("2d", "3d_fullres"):
        conf = pm.get_configuration(cfg)
        with torch.device("meta"):
            net = nnUNetTrainer.build_network_architecture(pm, conf, 1, n_heads, True)
            pred_net = nnUNetTrainer.build_network_architecture(pm, conf, 1, n_heads, False)
        patch = [int(p) for p in conf.patch_size]
        step = _step_flops(net, conf.batch_size, 1, patch)
        fwd = _forward_flops(pred_net, 1, patch)
        mirrors = 2 ** len(patch)  # nnU-Net mirrors every axis of these patches
        tiles = 0.0
        for w, h, n, sp, per in data.scans:
            grid = [h * sp / conf.spacing[-2], w * sp / conf.spacing[-1]]
            shape = grid if cfg == "2d" else [per * KAGGLE_THICKNESS / conf.spacing[0], *grid]
            shape = [max(int(round(a)), p) for a, p in zip(shape, patch, strict=True)]
            n_tiles = math.prod(len(t) for t in compute_steps_for_sliding_window(
                shape, patch, 0.5))
            tiles += n_tiles * (n if cfg == "2d" else n / per)
        summary[cfg] = {"patch_size": patch, "batch_size": int(conf.batch_size),
                        "spacing": [float(v) for v in conf.spacing],
                        "features_per_stage": list(conf.network_arch_init_kwargs[
                            "features_per_stage"]),
                        "flop_per_iteration": step, "flop_per_patch": fwd,
                        "mirrors": mirrors, "patches_per_slice": tiles / data.n_slices}
    # The CPU reference: the 2d network of the real slices' plan at 256 px patches of 2.
    arch = pm.get_configuration("2d").network_arch_init_kwargs
    k = len(NNUNET_CPU_REF["features"])
    ref_kwargs = {**arch, "n_stages": k, "features_per_stage": NNUNET_CPU_REF["features"],
                  "kernel_sizes": [[3, 3]] * k, "strides": [[1, 1]] + [[2, 2]] * (k - 1),
                  "n_conv_per_stage": [2] * k, "n_conv_per_stage_decoder": [2] * (k - 1)}
    conf2d = pm.get_configuration("2d")
    with torch.device("meta"):
        ref = get_network_from_plans(conf2d.network_arch_class_name, ref_kwargs,
                                     conf2d.network_arch_init_kwargs_req_import, 1, n_heads,
                                     allow_init=False, deep_supervision=True)
    ref_flop = _step_flops(ref, NNUNET_CPU_REF["batch"], 1, NNUNET_CPU_REF["patch"])
    cpu_rate = ref_flop / NNUNET_CPU_REF["seconds"]
    summary["cpu_reference"] = {**NNUNET_CPU_REF, "flop_per_iteration": ref_flop,
                                "implied_gflops": cpu_rate / 1e9, "source": NNUNET_CPU_DOC}
    out = {}
    for track in tracks:
        s = track.settings
        p = summary[s.configuration]
        if s.patch_size is not None or s.batch_size is not None or s.spacing is not None:
            _log(f"{track.name}: patch, batch or spacing overridden; FLOPs are of the plan")
        per_slice = p["patches_per_slice"] * p["mirrors"] * p["flop_per_patch"]
        out[track.name] = {
            "family": "nnunet",
            "units": {"configuration": s.configuration, "epochs": s.epochs,
                      "iterations_per_epoch": s.iterations_per_epoch,
                      "val_iterations_per_epoch": s.val_iterations_per_epoch,
                      "cpu_iteration_s": p["flop_per_iteration"] / cpu_rate,
                      "cpu_predict_s_per_slice": per_slice / cpu_rate,
                      "flop_per_slice_predict": per_slice,
                      "patches_per_slice": p["patches_per_slice"] * p["mirrors"]},
            "how": (f"nnU-Net's own plan for the full data ({s.configuration}: patch "
                    f"{p['patch_size']}, batch {p['batch_size']}); CPU iteration = "
                    f"{NNUNET_CPU_REF['seconds']:g} s x FLOPs ratio to the reference "
                    "iteration (named assumption); prediction: sliding window at step 0.5 "
                    f"x {p['mirrors']} mirrorings"),
        }
    return out, summary


# ================================================================== the report
def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _hours(h: float) -> str:
    if h >= 24 * 365:
        return f"{h / (24 * 365):,.1f} years"
    if h >= 48:
        return f"{h:,.0f} h ({h / 24:,.1f} d)"
    return f"{h:,.1f} h" if h >= 1 else f"{h * 60:,.1f} min"


def _markdown(report: dict) -> str:
    d, m = report["data"], report["machine"]
    A, B = report["machines"]["A"], report["machines"]["B"]
    est = report["estimate"]
    lines = [
        "# Full-data cost of `kaggle.yaml`",
        "",
        f"Estimated wall time of `{report['config']}` on the full Kaggle training set "
        f"({d['n_slices']:,} slices, {d['n_scans']} case-days, {d['n_cases']} cases; "
        f"{d['n_excluded_scans']} case-days excluded), {d['n_folds']}-fold case-grouped "
        f"cross-validation ({d['fold_slices'][0]:,.0f} training, {d['fold_slices'][1]:,.0f} "
        f"validation, {d['fold_slices'][2]:,.0f} test slices per fold), {d['n_seeds']} "
        f"seed(s): every track fitted and evaluated {d['n_folds'] * d['n_seeds']} times.",
        "",
        f"Measured on: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}, torch "
        f"{m['torch']}, load average {m['loadavg_before']} before / {m['loadavg_after']} "
        f"after (other work shares the CPUs); git {report['git_sha']}, {report['date']}; "
        f"phantom of {report['phantom']['n_cases']} cases x {report['phantom']['n_slices']} "
        f"slices at {', '.join(f'{w}x{h}' for w, h in report['phantom']['sizes'])}; "
        f"measurement took {report['measure_s']:.0f} s."
        + (" **Smoke run: tiny sizes, the figures say nothing.**" if report["smoke"] else ""),
        "",
        "## Result",
        "",
        f"- **A** ({A['name']}): **{_hours(est['A']['total_h'])}**",
        f"- **B** ({B['name']}): **{_hours(est['B']['total_h'])}**",
        "",
        "| track | A: one fit | A: fits | A: evaluation | A: total | B: one fit | B: fits "
        "| B: evaluation | B: total |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in est["A"]["tracks"]:
        a, b = est["A"]["tracks"][name], est["B"]["tracks"][name]
        lines.append(
            f"| {name} | {_hours(a['per_fit_h'])} | {_hours(a['fit_h'])} | "
            f"{_hours(a['evaluate_h'])} | {_hours(a['total_h'])} | {_hours(b['per_fit_h'])} | "
            f"{_hours(b['fit_h'])} | {_hours(b['evaluate_h'])} | {_hours(b['total_h'])} |")
    lines += [
        f"| data (once: index, first decode, example slices) | | | | "
        f"{_hours(est['A']['data_h'])} | | | | {_hours(est['B']['data_h'])} |",
        f"| **total** | | | | **{_hours(est['A']['total_h'])}** | | | | "
        f"**{_hours(est['B']['total_h'])}** |",
        "",
        "Largest stages (B):",
        "",
    ]
    for name, t in est["B"]["tracks"].items():
        top = sorted(t["stages_h"].items(), key=lambda kv: -kv[1])[:3]
        lines.append(f"- {name}: " + "; ".join(f"{k} {_hours(v)}" for k, v in top))
    lines += ["", "## Measured unit throughputs (this machine)", "",
              "Per megapixel (Mpx) where the work follows the pixels; the full data's mean "
              f"slice is {d['mean_mpx'] * 1e6:,.0f} pixels.", "",
              "| what | figure | how |", "|---|---|---|"]
    ev = report["evaluation"]
    lines += [
        f"| read a scan, PNG decode | {ev['read_png']:.2f} s/Mpx | index.read without the "
        f"cache, every phantom scan |",
        f"| read a scan, decoded cache | {ev['read']:.2f} s/Mpx | index.read again "
        "(`cache_scans`) |",
        f"| index, full data | {report['index_s']:.1f} s | {report['index_source']} |",
        f"| threshold sweep (validation) | {ev['sweep']:.2f} s/Mpx | {ev['how']} |",
        f"| volume steps (validation) | {ev['postprocess']:.2f} s/Mpx | same |",
        f"| scoring (test) | {ev['score']:.2f} s/Mpx | same |",
    ]
    for name, t in report["tracks"].items():
        u = t["units"]
        if t["family"] == "blocks":
            f, p = u["fit"], u["predict"]
            figs = (f"featurise {u['featurise_s_per_mpx']:.2f} s/Mpx; "
                    f"{u['blocks_per_slice']:.0f} blocks/slice offered; fit {f['s'][0]:.2f} s "
                    f"/ {f['s'][1]:.2f} s at {f['n'][0]:,} / {f['n'][1]:,} blocks "
                    f"(law {f['law']}); predict {p['s_per_mpx'][0]:.2f} / "
                    f"{p['s_per_mpx'][1]:.2f} s/Mpx")
        elif t["family"] == "cnn":
            figs = (f"featurise {u['featurise_s_per_mpx']:.3f} s/Mpx; "
                    f"{u['blocks_per_slice']:.0f} blocks/slice; "
                    f"{u['cpu_s_per_block_epoch'] * 1e3:.2f} ms per block and epoch "
                    f"({u['flop_per_block_epoch'] / 1e6:.1f} MFLOP); predict "
                    f"{u['predict_s_per_mpx']:.2f} s/Mpx ({u['flop_per_mpx'] / 1e9:.0f} "
                    "GFLOP/Mpx)")
        elif t["family"] == "net":
            ms = t["measured"]
            figs = (f"step {u['cpu_step_s']:.1f} s at batch {u['batch_size']} "
                    f"({u['flop_per_step'] / 1e12:.2f} TFLOP; measured {ms['step_s']:.2f} s at "
                    f"{ms['batch']} x {ms['size']} px, {ms['cpu_train_gflops']:.0f} GFLOP/s); "
                    f"forward {u['cpu_forward_s']:.2f} s/slice "
                    f"({u['flop_per_slice'] / 1e9:.0f} GFLOP); prepare "
                    f"{u['prepare_s_per_mpx']:.2f} s/Mpx")
        else:
            figs = (f"CPU iteration {u['cpu_iteration_s']:.0f} s (assumed); CPU predict "
                    f"{u['cpu_predict_s_per_slice']:.1f} s/slice; "
                    f"{u['flop_per_slice_predict'] / 1e9:.0f} GFLOP/slice predicted")
        lines.append(f"| {name} | {figs} | {t['how']} |")
    nn = report.get("nnunet_plan") or {}
    lines += ["", "## Assumptions (named; options change them)", ""]
    for a in report["assumptions"]:
        lines.append(f"- **{a['name']}** = {a['value']}: {a['why']}")
    if nn:
        lines += ["", "nnU-Net's plan for the full data (its planner on the full data's "
                  "shapes and spacings):", ""]
        for cfg in ("2d", "3d_fullres"):
            p = nn[cfg]
            lines.append(
                f"- {cfg}: patch {p['patch_size']}, batch {p['batch_size']}, spacing "
                f"{p['spacing']}, features {p['features_per_stage']}: "
                f"{p['flop_per_iteration'] / 1e12:.2f} TFLOP per training iteration, "
                f"{p['patches_per_slice']:.2f} patches per slice x {p['mirrors']} mirrorings "
                "when predicting")
        c = nn["cpu_reference"]
        lines.append(f"- CPU reference iteration (8-stage 2d net, {c['patch'][0]} px x "
                     f"{c['batch']}): {c['flop_per_iteration'] / 1e12:.3f} TFLOP in "
                     f"{c['seconds']:g} s = {c['implied_gflops']:.0f} GFLOP/s (with nnU-Net's "
                     "in-process augmentation)")
    lines += [
        "",
        "## Method",
        "",
        "Per track, one fit and its evaluation of one fold are built from the unit "
        "throughputs (`track_work` in the script): block tracks read and featurise every "
        "training slice, fit the classifier on the capped sample (`max_train_blocks`: each "
        "slice keeps at most ceil(cap / training slices)) at the growth law named, and "
        "predict the validation slices twice (threshold sweep, volume steps) and the test "
        "slices once; the block CNN trains all its epochs on its capped sample; the "
        "segmentation nets prepare the training and validation slices, make `max_steps` "
        "steps and one validation pass per epoch (epochs = steps / ceil(training slices / "
        "batch)); nnU-Net runs its epochs of training and validation iterations. Every "
        "track then reads the validation scans twice, the training scans once (z-range) and "
        "the test scans once, and pays the measured sweep, volume-step and scoring costs. "
        "That work x folds x seeds, plus the data stages run once, is the run. Machine A "
        "runs it as measured; machine B divides per-scan stages by the speed-up of its "
        "workers and multi-threaded stages by the ratio of its cores' speed-up to this "
        "machine's (`cpu_speedup`), runs single-process stages as measured, and puts the "
        "networks' training and prediction on the GPU (FLOPs / sustained rate + a fixed "
        "cost per step; nnU-Net's iterations at its documented epoch time), the resizing "
        "around a net's prediction staying on the CPU. Caveats: the phantom's scans are "
        "short (per-scan fixed costs weigh more per slice than on 144-slice scans), its maps "
        "come from briefly trained models, and other work on the machine slows what is "
        "measured (OpenMP libraries most: `--threads 1` on a shared machine). Not counted: "
        "report building, the Wilcoxon/bootstrap tables, disk space (the decoded-scan cache "
        "is a few GB), contention between stages.",
        "",
        f"Command: `{report['command']}`",
        "",
    ]
    return "\n".join(lines)


def _summary(report: dict) -> dict:
    est = report["estimate"]
    return {"A_total_h": est["A"]["total_h"], "B_total_h": est["B"]["total_h"],
            "A_tracks_h": {k: v["total_h"] for k, v in est["A"]["tracks"].items()},
            "B_tracks_h": {k: v["total_h"] for k, v in est["B"]["tracks"].items()},
            "gpu_tflops": report["machines"]["B"]["gpu_tflops"]}


# ======================================================================== main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="experiments/configs/kaggle.yaml",
                   help="the comparison config to cost (default kaggle.yaml)")
    p.add_argument("--tracks", nargs="+", default=None, help="only these tracks")
    p.add_argument("--smoke", action="store_true",
                   help="tiny phantom and budgets (tests): the figures mean nothing")
    p.add_argument("--cases", type=int, default=None, help="phantom cases (default 6; smoke 3)")
    p.add_argument("--slices", type=int, default=None, help="slices per phantom scan (12; 4)")
    p.add_argument("--cnn-epochs", type=int, default=1, help="block CNN epochs measured")
    p.add_argument("--net-steps", type=int, default=None, help="net steps measured (3; 2)")
    p.add_argument("--net-batch", type=int, default=None,
                   help="net batch measured (default 4, smoke 2; 0: the track's own)")
    p.add_argument("--net-size", type=int, default=None,
                   help="net grid measured (default the track's; smoke 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="library threads while measuring (random forest, LightGBM, torch; "
                        "default: the machine's CPUs, as the engine runs; smoke 1)")
    p.add_argument("--cores-b", type=int, default=16, help="machine B's CPU cores")
    p.add_argument("--added-core-efficiency", type=float, default=0.57,
                   help="speed-up each added core gives, share of one (0.57: FACTS.md, "
                        "two workers 1.57x on per-scan stages)")
    p.add_argument("--gpu-name", default="A100/H100-class GPU (nnU-Net's A100 figures)")
    p.add_argument("--gpu-tflops", type=float, default=None,
                   help="sustained TFLOP/s of the nets on machine B's GPU (default: the "
                        "rate nnU-Net's documented A100 2d epoch time implies at its plan's "
                        "FLOPs for the full data)")
    p.add_argument("--gpu-step-overhead-ms", type=float, default=3.0,
                   help="fixed GPU cost per optimiser step or predicted batch (ms)")
    p.add_argument("--gpu-nnunet-epoch-s", nargs=2, type=float, default=None,
                   metavar=("S_2D", "S_3D"),
                   help="GPU seconds per nnU-Net epoch (250 iterations), 2d and 3d_fullres "
                        "(default: the documented A100 means)")
    p.add_argument("--out", type=Path, default=None, help="output stem: <out>.md, <out>.json")
    p.add_argument("--json", action="store_true", help="last stdout line: one JSON object")
    return p


def _measure(args, config, tracks, data: FullData, sizes, n_cases: int, n_slices: int,
             net: dict, threads: int | None) -> dict:
    """Every measurement, on a phantom written to a temporary folder (removed after)."""
    from gitract.data.index import index_dataset, natural_key
    from gitract.data.phantom import PhantomConfig, write_phantom

    by = {f: [t for t in tracks if _family(t) == f] for f in set(FAMILIES.values())}
    if not by["blocks"]:
        raise SystemExit("the config needs a block track (rf or lightgbm): the evaluation "
                         "stages are measured with the first one")
    with tempfile.TemporaryDirectory(prefix="bench_full_cost.") as tmp:
        tmp = Path(tmp)
        _log(f"phantom: {n_cases} cases x {n_slices} slices")
        write_phantom(tmp / "phantom", PhantomConfig(n_cases=n_cases, n_days=1,
                                                     n_slices=n_slices, seed=args.seed,
                                                     sizes=sizes))
        t0 = time.perf_counter()
        index_png = index_dataset("kaggle", tmp / "phantom")
        index_s = (time.perf_counter() - t0) / index_png.n_slices * data.n_slices
        index = index_dataset("kaggle", tmp / "phantom", cache_dir=tmp / "decoded")
        cases = sorted(index.cases(), key=natural_key)
        split = (index.keys_of(cases[:-2]), index.keys_of([cases[-2]]),
                 index.keys_of([cases[-1]]))
        net_split = (index.keys_of(cases[:2] if n_cases > 3 else cases[:1]), [], split[2])
        evaluation = measure_reads(index_png, index, index.keys())
        measured = measure_blocks(by["blocks"], index, split, seed=args.seed, threads=threads)
        first = by["blocks"][0]
        evaluation.update(measure_evaluation(measured[first.name]["adapter"], first, index,
                                             split, tmp, config))
        for t in by["blocks"]:
            del measured[t.name]["adapter"]
        measured.update(measure_cnn(by["cnn"], index, split, seed=args.seed,
                                    epochs=args.cnn_epochs, threads=threads))
        measured.update(measure_nets(by["net"], index, net_split, seed=args.seed,
                                     threads=threads, **net))
        nn_tracks, plan = measure_nnunet(by["nnunet"], data, tmp / "nnunet")
        measured.update(nn_tracks)
    # nnU-Net's preparation in passes of the nets' (read, resample, write a slice).
    prepare = next((measured[t.name]["units"]["prepare_s_per_mpx"] for t in by["net"]),
                   evaluation["read"])
    for t in by["nnunet"]:
        measured[t.name]["units"]["prepare_s_per_mpx"] = NNUNET_PREP_PASSES * prepare
    return {"tracks": {t.name: measured[t.name] for t in tracks}, "evaluation": evaluation,
            "plan": plan, "index_s_phantom": index_s}


def _machines(args, plan: dict, cores: int) -> dict[str, Machine]:
    """Machine A (this one, as the engine runs by default) and machine B (the options)."""
    epoch_s = dict(NNUNET_A100_EPOCH_S)
    if args.gpu_nnunet_epoch_s:
        epoch_s = dict(zip(("2d", "3d_fullres"), args.gpu_nnunet_epoch_s, strict=True))
    implied = plan["2d"]["flop_per_iteration"] * 250 / epoch_s["2d"] / 1e12
    e = args.added_core_efficiency
    return {
        "A": Machine(name=f"this machine: {cores} CPU cores, no GPU, engine defaults "
                          "(per-scan stages in one process)", cores=cores, n_jobs=1,
                     added_core_efficiency=e),
        "B": Machine(name=f"{args.cores_b} CPU cores (--n-jobs {args.cores_b}) + one "
                          f"{args.gpu_name}", cores=args.cores_b, n_jobs=args.cores_b,
                     gpu=args.gpu_name,
                     gpu_tflops=implied if args.gpu_tflops is None else args.gpu_tflops,
                     gpu_step_overhead_s=args.gpu_step_overhead_ms / 1000.0,
                     nnunet_epoch_s=epoch_s, added_core_efficiency=e),
    }


def _assumptions(args, machine: Machine, plan: dict, threads: int) -> list[dict]:
    """The named assumptions, their values and where each comes from."""
    e, epoch_s = args.added_core_efficiency, machine.nnunet_epoch_s
    b_speed = cpu_speedup(machine.cores, e)
    implied_3d = plan["3d_fullres"]["flop_per_iteration"] * 250 / epoch_s["3d_fullres"] / 1e12
    gpu_why = (
        "the rate nnU-Net's documented A100 2d epoch time "
        f"({epoch_s['2d']:.1f} s per 250 iterations, {NNUNET_DOC}) implies at the FLOPs of "
        f"its 2d plan for the full data ({plan['2d']['flop_per_iteration'] / 1e12:.2f} "
        f"TFLOP per iteration), applied to every network; its 3d_fullres figure implies "
        f"{implied_3d:.1f} TFLOP/s. Small nets (the block CNN, DeepLabV3+ at base 32) use "
        "less of a GPU; an H100 gives more" if args.gpu_tflops is None
        else "given with --gpu-tflops")
    return [
        {"name": "added-core efficiency", "value": e,
         "why": "each core beyond the first adds this share of one core's speed, for "
                "per-scan workers and library threads alike: 0.57 from the measured "
                "two-worker speed-up 1.57x on per-scan stages (FACTS.md, bench_scale); "
                f"B: {b_speed:.2f}x over one core, {b_speed / cpu_speedup(threads, e):.2f}x "
                f"over the {threads} thread(s) measured; memory bandwidth and disk may cap "
                "it lower"},
        {"name": "GPU sustained rate", "value": f"{machine.gpu_tflops:.1f} TFLOP/s",
         "why": gpu_why},
        {"name": "GPU cost per step", "value": f"{args.gpu_step_overhead_ms:g} ms",
         "why": "kernel launches and Python per optimiser step or predicted batch, beyond "
                "the FLOPs (not measured: no GPU here)"},
        {"name": "nnU-Net GPU epoch",
         "value": f"2d {epoch_s['2d']:.1f} s, 3d_fullres {epoch_s['3d_fullres']:.1f} s",
         "why": f"{NNUNET_DOC}: mean of three MSD tasks, mixed precision, validation "
                "skipped (added here as a third of a training iteration each). These "
                "times need nnU-Net's augmentation workers (12 by default; the document "
                "recommends 32 for an A100, B has 16). The nnunet track as written sets "
                "nnUNet_n_proc_DA=0 (augmentation in the training process, "
                "gitract/models/nnunet/backend.py): run so, a GPU waits on one CPU core "
                "and the nnU-Net figures of B are too low"},
        {"name": "nnU-Net CPU iteration",
         "value": f"{NNUNET_CPU_REF['seconds']:g} s at {NNUNET_CPU_REF['patch'][0]} px x "
                  f"{NNUNET_CPU_REF['batch']}",
         "why": f"{NNUNET_CPU_DOC}; scaled to each plan's iteration by FLOPs (its "
                "augmentation runs in the training process on this machine)"},
        {"name": "nnU-Net preparation", "value": f"{NNUNET_PREP_PASSES} passes",
         "why": "export, fingerprint and preprocessing each cost one slice preparation of "
                "the nets (read, resample, write) per training and validation slice"},
        {"name": "growth laws",
         "value": "LightGBM fit ~n, random forest fit ~n log n; forest prediction + its "
                  "measured increase per doubling of n",
         "why": "histogram boosting at fixed rounds is linear in n; a forest's trees "
                "deepen as log n; both measured at two sample sizes for a check"},
        {"name": "budgets", "value": "the config's",
         "why": "the block CNN runs all max_epochs (no early stop), the nets max_steps, "
                "nnU-Net epochs x iterations: upper bounds of a run"},
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    smoke = args.smoke
    n_cases = args.cases or (3 if smoke else 6)
    n_slices = args.slices or (4 if smoke else 12)
    net = {"steps": args.net_steps or (2 if smoke else 3),
           "batch": (args.net_batch if args.net_batch is not None else (2 if smoke else 4))
           or None,
           "size": args.net_size or (64 if smoke else None)}
    threads = args.threads or (1 if smoke else None)
    if n_cases < 3:
        raise SystemExit("--cases must be at least 3 (training, validation, test)")
    out = args.out or Path("reports/_scratch/bench_full_cost_smoke" if smoke
                           else "reports/bench_full_cost")

    import torch

    from gitract.config import load_config

    config = load_config(args.config)
    tracks = [t for t in config.tracks if args.tracks is None or t.name in args.tracks]
    if args.tracks is not None and len(tracks) != len(args.tracks):
        raise SystemExit(f"--tracks: unknown among {[t.name for t in config.tracks]}")
    data = FullData(n_excluded_scans=len(config.data.exclude), n_folds=config.split.n_folds,
                    n_val_cases=config.split.n_val or 1, n_seeds=len(config.seeds or (0,)))
    sizes = ((96, 80),) if smoke else ((266, 266), (360, 310))
    cores = os.cpu_count() or 1
    if threads is not None:
        torch.set_num_threads(threads)
    measured_threads = min(threads or cores, cores)
    load_before = [round(v, 2) for v in os.getloadavg()]
    t_start = time.perf_counter()
    m = _measure(args, config, tracks, data, sizes, n_cases, n_slices, net, threads)
    measure_s = time.perf_counter() - t_start

    kaggle_size = REPO_ROOT / "reports" / "bench_kaggle_size.json"
    if kaggle_size.is_file():
        index_s = json.loads(kaggle_size.read_text())["steps"]["index"]["index_s"]
        index_source = "reports/bench_kaggle_size.json (Kaggle-size phantom, this machine)"
    else:
        index_s = m["index_s_phantom"]
        index_source = "the phantom's index time per slice x the full data's slices"
    machines = _machines(args, m["plan"], cores)
    ev = {k: v for k, v in m["evaluation"].items() if isinstance(v, float)}
    est = {k: estimate(m["tracks"], ev, index_s, data, machine,
                       measured_cores=measured_threads) for k, machine in machines.items()}
    report = {
        "benchmark": "bench_full_cost",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_sha": _git_sha(),
        "command": shlex.join(["python", "experiments/bench_full_cost.py", *argv]),
        "config": args.config,
        "smoke": smoke,
        "machine": {"cpus": cores, "python": platform.python_version(),
                    "platform": platform.platform(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(),
                    "measured_threads": measured_threads, "loadavg_before": load_before,
                    "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
        "phantom": {"n_cases": n_cases, "n_slices": n_slices,
                    "sizes": [list(s) for s in sizes]},
        "measure_s": measure_s,
        "data": {**asdict(data), "n_slices": data.n_slices, "n_scans": data.n_scans,
                 "mean_mpx": data.mean_mpx, "fold_slices": list(data.fold_slices())},
        "index_s": index_s, "index_source": index_source,
        "evaluation": m["evaluation"],
        "tracks": m["tracks"],
        "nnunet_plan": m["plan"],
        "machines": {k: {**asdict(v), "nnunet_epoch_s": dict(v.nnunet_epoch_s)}
                     for k, v in machines.items()},
        "assumptions": _assumptions(args, machines["B"], m["plan"], measured_threads),
        "estimate": est,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(f"{out}.json", json.dumps(report, indent=2, default=str) + "\n")
    write_text_atomic(f"{out}.md", _markdown(report))
    print(f"full-data cost of {args.config} ({data.n_folds} folds x {data.n_seeds} seeds):")
    for k in ("A", "B"):
        print(f"  {k}: {_hours(est[k]['total_h'])}  ({machines[k].name})")
        for name, t in est[k]["tracks"].items():
            print(f"      {name:<16} {_hours(t['total_h']):>22}  "
                  f"(one fit {_hours(t['per_fit_h'])})")
    print(f"  GPU assumption: {machines['B'].gpu_tflops:.1f} TFLOP/s; measured in "
          f"{measure_s:.0f} s; report {out}.md")
    if args.json:
        print(json.dumps(_summary(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
