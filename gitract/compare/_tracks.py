"""Adapters giving every track the same face: fit, predict_proba over stacks, save, load.

``predict_proba(stacks)`` returns ``{key: (S, H, W, C) float32}`` probability maps on each
slice's own grid, so thresholds, metrics and figures treat all tracks alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gitract.data.record import SliceStack


class BlockTrackAdapter:
    """Random forest / LightGBM / CNN on blocks (:mod:`gitract.evaluation`)."""

    kind = "blocks"

    def __init__(self, params: Mapping[str, Any], *, random_state: int,
                 cache: dict | None = None) -> None:
        self.params = dict(params)
        self.random_state = random_state
        # Per-slice features shared by tracks with the same featurizer and sampling
        # (e.g. RF and LightGBM at one block size), and across folds.
        self.cache = cache
        self.track_ = None

    def _config(self):
        from gitract.evaluation import BlockTrackConfig

        return BlockTrackConfig.from_dict({"random_state": self.random_state, **self.params})

    def fit(self, train: Sequence[SliceStack], val: Sequence[SliceStack]) -> BlockTrackAdapter:
        from gitract.evaluation import train_block_track

        self.track_ = train_block_track(list(train), self._config(), cache=self.cache)
        return self

    def predict_proba(self, stacks: Sequence[SliceStack]):
        return self.track_.predict_proba(list(stacks), cache=self.cache)

    @property
    def fit_seconds(self) -> float:
        return float(self.track_.fit_seconds + (self.track_.featurize_seconds or 0.0))

    @property
    def model_bytes(self) -> int:
        return int(self.track_.model_bytes)

    @property
    def training(self) -> dict | None:
        """Budget and curve of a net trained by epochs (the CNN); None for RF / LightGBM."""
        model = self.track_.model
        history = getattr(model, "history_", None)
        if not isinstance(history, dict) or not history.get("train_loss"):
            return None
        n_epochs = int(getattr(model, "n_epochs_", len(history["train_loss"])))
        max_epochs = getattr(model, "max_epochs", None)
        stopped = "max_epochs" if max_epochs is not None and n_epochs >= max_epochs else "patience"
        return {"budget": {"max_epochs": max_epochs}, "epochs": n_epochs, "steps": None,
                "stopped": stopped, "best_epoch": int(getattr(model, "best_epoch_", 0)) + 1,
                "curve": [{"epoch": i + 1, "train_loss": float(t),
                           "val_loss": (float(history["val_loss"][i])
                                        if i < len(history.get("val_loss", [])) else None)}
                          for i, t in enumerate(history["train_loss"])]}

    def save(self, directory: Path) -> None:
        from gitract.evaluation import save_block_track

        save_block_track(self.track_, directory)

    def load(self, directory: Path) -> BlockTrackAdapter:
        from gitract.evaluation import load_block_track

        self.track_ = load_block_track(directory)
        return self


class UNetTrackAdapter:
    """The 2.5D U-Net (:mod:`gitract.models.unet`)."""

    kind = "unet"

    def __init__(self, params: Mapping[str, Any], *, random_state: int,
                 cache: dict | None = None) -> None:
        self.params = dict(params)
        self.random_state = random_state
        self.model_ = None
        self._fit_seconds = math.nan

    def fit(self, train: Sequence[SliceStack], val: Sequence[SliceStack]) -> UNetTrackAdapter:
        from gitract.models.unet import UNetConfig, UNetSegmenter

        config = UNetConfig.from_dict({"random_state": self.random_state, "progress": False,
                                       **self.params})
        start = time.perf_counter()
        self.model_ = UNetSegmenter(config).fit(list(train), list(val) or None)
        self._fit_seconds = time.perf_counter() - start
        return self

    def predict_proba(self, stacks: Sequence[SliceStack]):
        from gitract.evaluation import ProbaMaps

        start = time.perf_counter()
        maps = ProbaMaps(self.model_.predict_stacks(list(stacks)))
        maps.seconds = time.perf_counter() - start
        maps.n_slices = sum(s.n_slices for s in stacks)
        return maps

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

        from gitract.utils.io import write_text_atomic

        directory.mkdir(parents=True, exist_ok=True)
        self.model_.save(directory / "unet.pt")
        write_text_atomic(directory / "fit.json", json.dumps({"fit_seconds": self._fit_seconds}))

    def load(self, directory: Path) -> UNetTrackAdapter:
        import json

        from gitract.models.unet import UNetSegmenter

        self.model_ = UNetSegmenter.load(directory / "unet.pt")
        self._fit_seconds = json.loads((directory / "fit.json").read_text())["fit_seconds"]
        return self


_ADAPTERS = {"blocks": BlockTrackAdapter, "cnn": BlockTrackAdapter, "unet": UNetTrackAdapter}


def make_track(kind: str, params: Mapping[str, Any], *, random_state: int,
               cache: dict | None = None):
    """The adapter for a track kind (``blocks``, ``cnn``, ``unet``); ``cache`` is an
    in-memory per-slice feature cache shared by block tracks."""
    if kind not in _ADAPTERS:
        raise ValueError(f"track kind must be one of {sorted(_ADAPTERS)}, got {kind!r}")
    if kind == "cnn":
        params = {"classifier": "cnn", "features": "raw", **params}
    return _ADAPTERS[kind](params, random_state=random_state, cache=cache)
