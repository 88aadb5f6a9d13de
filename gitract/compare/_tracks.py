"""Adapters giving every track the same face: fit, predict_proba_stack, save, load.

``fit(index, train_keys, val_keys)`` reads the training scans one at a time (block tracks
keep only their sampled rows; the U-Net prepares them to disk), and
``predict_proba_stack(stack)`` returns one scan's (S, H, W, C) float32 probability maps on
its own grid, so thresholds, metrics and figures treat all tracks alike. Adapters are
picklable: per-scan stages ship them to joblib or Dask workers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gitract.config import SEGMENTER_KINDS
from gitract.data.record import SliceStack
from gitract.evaluation import (
    BlockTrackConfig,
    fit_block_track,
    load_block_track,
    save_block_track,
    training_rows,
)
from gitract.utils.io import write_text_atomic
from gitract.utils.parallel import ParallelConfig, map_scans
from gitract.utils.progress import show_progress

#: Track parameters that set the validation sweep rather than the model.
TUNING_KEYS = ("threshold_grid", "min_sizes", "hausdorff_max_side")


class BlockTrackAdapter:
    """Random forest / LightGBM / CNN on blocks (:mod:`gitract.evaluation`)."""

    kind = "blocks"

    def __init__(self, params: Mapping[str, Any], *, random_state: int) -> None:
        self.params = dict(params)
        self.random_state = random_state
        self.config = self._config()  # validated before any data is read
        self.track_ = None

    def _config(self):
        return BlockTrackConfig.from_dict({"random_state": self.random_state, **self.params})

    def fit(self, index, train_keys: Sequence[str], val_keys: Sequence[str], *,
            parallel=None) -> BlockTrackAdapter:
        n_slices = sum(index.ref(k).n_slices for k in train_keys)
        parts = map_scans(_training_rows, [index.source(k) for k in train_keys],
                          parallel=parallel or ParallelConfig(),
                          desc="training scans (read, sample, featurise)", config=self.config,
                          n_train_slices=n_slices)
        self.track_ = fit_block_track(parts, self.config, index.classes,
                                      train_keys=list(train_keys))
        return self

    def predict_proba_stack(self, stack: SliceStack):
        return self.track_.predict_proba([stack])[stack.key]

    @property
    def fit_seconds(self) -> float:
        return float(self.track_.fit_seconds + (self.track_.featurize_seconds or 0.0))

    @property
    def model_bytes(self) -> int:
        return int(self.track_.model_bytes)

    @property
    def training(self) -> dict | None:
        """Budget and curve of a net (the CNN; by epochs, or by steps when trained
        densely); None for RF / LightGBM."""
        model = self.track_.model
        history = getattr(model, "history_", None)
        if not isinstance(history, dict) or not history.get("train_loss"):
            return None
        val = history.get("val_loss", [])
        n_epochs = int(getattr(model, "n_epochs_", len(history["train_loss"])))
        best = int(getattr(model, "best_epoch_", 0)) + 1
        if history.get("step"):  # dense training: a step budget, curve points by step
            return {"budget": {"max_steps": int(history["step"][-1])}, "epochs": n_epochs,
                    "steps": int(getattr(model, "n_steps_", history["step"][-1])),
                    "stopped": "max_steps", "best_epoch": best,
                    "curve": [{"epoch": i + 1, "step": int(history["step"][i]),
                               "train_loss": float(t),
                               "val_loss": float(val[i]) if i < len(val) else None}
                              for i, t in enumerate(history["train_loss"])]}
        max_epochs = getattr(model, "max_epochs", None)
        stopped = "max_epochs" if max_epochs is not None and n_epochs >= max_epochs else "patience"
        return {"budget": {"max_epochs": max_epochs}, "epochs": n_epochs, "steps": None,
                "stopped": stopped, "best_epoch": best,
                "curve": [{"epoch": i + 1, "train_loss": float(t),
                           "val_loss": float(val[i]) if i < len(val) else None}
                          for i, t in enumerate(history["train_loss"])]}

    def save(self, directory: Path) -> None:
        save_block_track(self.track_, directory)

    def load(self, directory: Path, *, device: str | None = None,
             num_threads: int | None = None) -> BlockTrackAdapter:
        """Read a saved track; ``num_threads`` overrides the CNN's torch threads (a CNN
        saved on a GPU machine already falls back to the CPU, so ``device`` is unused)."""
        self.track_ = load_block_track(directory)
        if num_threads is not None and hasattr(self.track_.model, "num_threads"):
            self.track_.model.num_threads = int(num_threads)
        return self


def _training_rows(source, *, config, n_train_slices):
    return training_rows(source.read(), config, n_train_slices=n_train_slices)


class UNetTrackAdapter:
    """The 2.5D U-Net, U-Net++ or DeepLabV3+ (:mod:`gitract.models.unet`; the
    ``architecture`` parameter, set from the track's kind by :func:`make_track`)."""

    kind = "unet"

    def __init__(self, params: Mapping[str, Any], *, random_state: int) -> None:
        from gitract.models.unet import UNetConfig

        self.params = dict(params)
        self.random_state = random_state
        # The sweep's settings are the engine's (see compare._run._tuning_options).
        model_params = {k: v for k, v in self.params.items() if k not in TUNING_KEYS}
        self.config = UNetConfig.from_dict({"random_state": self.random_state,
                                            "progress": False, **model_params})
        self.model_ = None
        self._fit_seconds = math.nan

    def fit(self, index, train_keys: Sequence[str], val_keys: Sequence[str], *,
            parallel=None) -> UNetTrackAdapter:
        from dataclasses import replace

        from gitract.models.unet import UNetSegmenter

        start = time.perf_counter()
        # Bars follow the run's setting (not a parameter: it changes no number).
        config = replace(self.config, progress=show_progress())
        self.model_ = UNetSegmenter(config).fit(
            [index.source(k) for k in train_keys], [index.source(k) for k in val_keys] or None)
        self._fit_seconds = time.perf_counter() - start
        return self

    def predict_proba_stack(self, stack: SliceStack):
        return self.model_.predict_proba_stack(stack)

    @property
    def fit_seconds(self) -> float:
        return float(self._fit_seconds)

    @property
    def model_bytes(self) -> int:
        return int(self.model_.model_bytes())

    @property
    def training(self) -> dict:
        """Budget, optimiser steps, why training stopped, and the per-epoch curve."""
        h = self.model_.history_
        c = self.model_.config
        return {"budget": {"max_steps": c.max_steps, "max_epochs": c.max_epochs,
                           "max_minutes": c.max_minutes},
                "epochs": len(h.epochs), "steps": int(h.steps), "stopped": h.stopped,
                "best_epoch": h.best_epoch,
                "curve": [{"epoch": e["epoch"], "step": e.get("step"),
                           "train_loss": e["train_loss"], "val_dice": e.get("val_dice")}
                          for e in h.epochs]}

    def save(self, directory: Path) -> None:
        import json

        directory.mkdir(parents=True, exist_ok=True)
        self.model_.save(directory / "unet.pt")
        write_text_atomic(directory / "fit.json", json.dumps({"fit_seconds": self._fit_seconds}))

    def load(self, directory: Path, *, device: str | None = None,
             num_threads: int | None = None) -> UNetTrackAdapter:
        """Read a saved track; ``device`` and ``num_threads`` override the saved ones."""
        import json
        from dataclasses import replace

        from gitract.models.unet import UNetSegmenter

        self.model_ = UNetSegmenter.load(directory / "unet.pt", device=device)
        if num_threads is not None:
            self.model_.config = replace(self.model_.config, num_threads=int(num_threads))
        try:
            self._fit_seconds = json.loads((directory / "fit.json").read_text())["fit_seconds"]
        except (OSError, ValueError, KeyError, TypeError):
            self._fit_seconds = math.nan  # a record of the fit, not needed to predict
        return self


_ADAPTERS = {"blocks": BlockTrackAdapter, "cnn": BlockTrackAdapter,
             **dict.fromkeys(SEGMENTER_KINDS, UNetTrackAdapter)}


def make_track(kind: str, params: Mapping[str, Any], *, random_state: int):
    """The adapter for a track kind (``blocks``, ``cnn``, or a segmentation net:
    ``unet``, ``unetpp``, ``deeplabv3plus``, which set ``architecture``); its parameters
    are validated here, before any data is read."""
    if kind not in _ADAPTERS:
        raise ValueError(f"track kind must be one of {sorted(_ADAPTERS)}, got {kind!r}")
    if kind == "cnn":
        params = {"classifier": "cnn", "features": "raw", **params}
    elif kind in SEGMENTER_KINDS:
        if params.get("architecture", kind) != kind:
            raise ValueError(f"a track of kind {kind} has architecture {kind!r}, got "
                             f"{params['architecture']!r}")
        params = {"architecture": kind, **params}
    return _ADAPTERS[kind](params, random_state=random_state)
