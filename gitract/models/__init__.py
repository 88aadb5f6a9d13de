"""Classifiers and segmenters behind one registry.

``make_model(name, **params)`` builds an unfitted model: ``"rf"`` and ``"lgbm"`` (scikit-learn
pipelines on block features), ``"cnn"`` (:class:`~gitract.models.cnn.BlockCNNClassifier` on raw
blocks) and ``"unet"`` (:class:`~gitract.models.unet.UNetSegmenter`). Torch is imported only
for the last two. ``device_problem(name)`` says why a torch device cannot be used here
(checked before a run does any work); ``select_device(name)`` picks it.
"""

from __future__ import annotations

from typing import Any

from gitract.models._device import device_problem, select_device
from gitract.models.pipelines import make_lgbm, make_rf

__all__ = ["MODELS", "device_problem", "make_model", "select_device"]

MODELS: tuple[str, ...] = ("rf", "lgbm", "cnn", "unet")


def make_model(name: str, **params: Any):
    """An unfitted model by name.

    Examples
    --------
    >>> make_model("rf", n_estimators=5).get_params()["clf__n_estimators"]
    5
    """
    if name == "rf":
        return make_rf(**params)
    if name in ("lgbm", "lightgbm"):
        return make_lgbm(**params)
    if name == "cnn":
        from gitract.models.cnn import BlockCNNClassifier

        return BlockCNNClassifier(**params)
    if name == "unet":
        from gitract.models.unet import UNetSegmenter

        return UNetSegmenter(**params)
    raise ValueError(f"name must be one of {MODELS}, got {name!r}")
