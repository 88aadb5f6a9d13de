"""Classifiers and segmenters: fit / predict_proba, nothing about thresholds or reports.

The names a config uses for them (``rf``, ``lightgbm``, ``cnn``, ``unet``, ...) are looked
up in one table, :mod:`gitract.tracks`. Exported here, torch-free: the settings of a
torch training run (:class:`TrainConfig`) and of a segmentation track
(:class:`UNetConfig`, a ``TrainConfig`` with the net's options), checked before torch
loads; :func:`device_name_problem` checks a device's name (config checks),
:func:`device_problem` whether this machine has it (checked before a run does any work;
imports torch for ``cuda`` / ``mps`` only) and :func:`select_device` picks it. Torch is
imported by :mod:`gitract.models.cnn`, :mod:`~gitract.models.unet`,
:mod:`~gitract.models.nets` and :mod:`~gitract.models.train_torch` only.
"""

from __future__ import annotations

from gitract.models._device import device_problem, select_device
from gitract.models._settings import (
    ARCHITECTURES,
    LOSSES,
    TrainConfig,
    UNetConfig,
    device_name_problem,
)

__all__ = ["ARCHITECTURES", "LOSSES", "TrainConfig", "UNetConfig", "device_name_problem",
           "device_problem", "select_device"]
