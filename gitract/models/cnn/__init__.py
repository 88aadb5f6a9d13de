"""``BlockCNNClassifier``: a scikit-learn facade over :class:`SmallBlockCNN`.

``X`` holds flattened raw blocks (n, block_size**2) float32 (or (n, bs, bs)); ``y`` the
class of each block's centre pixel. Besides the usual ``predict_proba`` the estimator
offers ``predict_proba_dense(image)``: the probabilities of the block centred at every
pixel of a slice from one fully convolutional pass (see
:func:`gitract.models.nets._block_cnn.to_dense`), equal to block-wise ``predict_proba`` on
reflect-padded blocks. ``gitract.probmaps.predict_proba_map`` uses it when present.

Submodules: ``_classifier`` (the estimator), ``_dense`` (dense training on whole slices),
``_persistence`` (save, load, pickling), ``_dihedral`` (training augmentation) and
``_threads`` (torch threads). Private helpers are re-exported here for code that imports
them from this module.
"""

from __future__ import annotations

from gitract.models.cnn._classifier import BlockCNNClassifier
from gitract.models.cnn._dihedral import _augment  # noqa: F401
from gitract.models.cnn._persistence import _FORMAT  # noqa: F401
from gitract.models.cnn._threads import _torch_threads  # noqa: F401

__all__ = ["BlockCNNClassifier"]
