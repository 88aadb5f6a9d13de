"""Track kinds ``unet``, ``unetpp`` and ``deeplabv3plus``: the 2.5D segmentation nets.

The settings are :class:`gitract.models.UNetConfig` (a :class:`~gitract.models.TrainConfig`
with the net's options): the segmenter that trains from them sits in the models layer,
below this one, and reads them back from a saved model, so the class lives there,
torch-free; :class:`SegmentationSettings` and its two subclasses add the kind's own
check (the kind names the network) and nothing else. The adapter trains :class:`gitract.models.unet.UNetSegmenter` (torch is
imported when a track is fitted or loaded).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gitract.data.record import SliceStack
from gitract.models import UNetConfig
from gitract.tracks._registry import register
from gitract.utils.io import write_text_atomic
from gitract.utils.progress import show_progress
from gitract.utils.schema import show

__all__ = ["DeepLabV3PlusSettings", "SegmentationAdapter", "SegmentationSettings",
           "UNetPlusPlusSettings"]


def _segmenter_class() -> type:
    from gitract.models.unet import UNetSegmenter  # torch only when a net is used

    return UNetSegmenter


class SegmentationAdapter:
    """A segmentation net behind the engine's face (the settings' ``architecture``)."""

    #: How a trained model is chosen beyond its settings; part of the engine's model key,
    #: so a model trained under an earlier rule (checkpoint on pooled validation Dice) is
    #: trained again rather than reused.
    model_rules = "checkpoint: validation competition score"

    def __init__(self, settings: UNetConfig, *, random_state: int) -> None:
        self.settings = settings
        self.random_state = random_state
        self.model_ = None
        self._fit_seconds = math.nan

    def fit(self, index, train_keys: Sequence[str], val_keys: Sequence[str], *,
            parallel=None) -> SegmentationAdapter:
        start = time.perf_counter()
        # Bars follow the run's setting (not a parameter: it changes no number).
        settings = replace(self.settings, progress=show_progress())
        self.model_ = _segmenter_class()(settings).fit(
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
                "best_epoch": h.best_epoch, "monitor": h.monitor,
                "curve": [{"epoch": e["epoch"], "step": e.get("step"),
                           "train_loss": e["train_loss"], "val_dice": e.get("val_dice"),
                           "val_score": e.get("val_score")}
                          for e in h.epochs]}

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.model_.save(directory / "unet.pt")
        write_text_atomic(directory / "fit.json", json.dumps({"fit_seconds": self._fit_seconds}))

    def load(self, directory: Path, *, device: str | None = None,
             num_threads: int | None = None) -> SegmentationAdapter:
        """Read a saved track; ``device`` and ``num_threads`` override the saved ones."""
        self.model_ = _segmenter_class().load(directory / "unet.pt", device=device)
        if num_threads is not None:
            self.model_.config = replace(self.model_.config, num_threads=int(num_threads))
        try:
            self._fit_seconds = json.loads((directory / "fit.json").read_text())["fit_seconds"]
        except (OSError, ValueError, KeyError, TypeError):
            self._fit_seconds = math.nan  # a record of the fit, not needed to predict
        return self


@dataclass(frozen=True)
class SegmentationSettings(UNetConfig):
    """:class:`UNetConfig` of a track of kind ``unet``; the subclasses below are those
    of ``unetpp`` and ``deeplabv3plus``. The kind names the network (the report lists
    tracks by kind), so ``architecture``, where written, must be the kind."""

    def __post_init__(self) -> None:
        kind = type(self).__dataclass_fields__["architecture"].default
        if self.architecture != kind:
            raise ValueError(f"architecture: a track of kind {kind} has architecture "
                             f"{kind!r}, got {show(self.architecture)} (set the track's "
                             "kind instead)")
        super().__post_init__()


@dataclass(frozen=True)
class UNetPlusPlusSettings(SegmentationSettings):
    """Settings of a track of kind ``unetpp``."""

    architecture: str = "unetpp"


@dataclass(frozen=True)
class DeepLabV3PlusSettings(SegmentationSettings):
    """Settings of a track of kind ``deeplabv3plus``."""

    architecture: str = "deeplabv3plus"


for _kind, _settings in (("unet", SegmentationSettings), ("unetpp", UNetPlusPlusSettings),
                         ("deeplabv3plus", DeepLabV3PlusSettings)):
    register(_kind, settings=_settings, adapter=SegmentationAdapter, device_key="device")
