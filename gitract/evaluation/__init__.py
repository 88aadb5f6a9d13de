"""The block-classifier track: featurise, fit, predict probability maps, save.

One track = a featurizer (:mod:`gitract.features`) + a block classifier
(:mod:`gitract.models.pipelines`, random forest or LightGBM, or the block CNN). The
comparison engine (:mod:`gitract.compare`) reads training scans one at a time and keeps
their sampled rows (:func:`training_rows`), fits on them (:func:`fit_block_track`), and
turns each scan into probability maps (:meth:`BlockTrack.predict_proba`); threshold tuning
and scoring are the engine's. :func:`train_block_track` fits on stacks held in memory
(notebooks, tests).

Every volume (a ``SliceStack``) is normalised with
:func:`gitract.preprocessing.normalize_intensity` before featurising. Block centres of
a slice are drawn with :func:`gitract.blocks.sample_block_centres` under a seed
derived from ``random_state`` and the slice id, so a slice gets the same blocks in
every fold; an optional ``cache`` (a plain dict) keeps each slice's features.
"""


from __future__ import annotations

from gitract.evaluation._config import CLASSIFIERS, BlockTrackConfig
from gitract.evaluation._io import load_block_track, save_block_track
from gitract.evaluation._track import (
    BlockTrack,
    ProbaMaps,
    fit_block_track,
    normalize_stack,
    predict_stacks,
    train_block_track,
    training_rows,
)

__all__ = [
    "CLASSIFIERS",
    "BlockTrack",
    "BlockTrackConfig",
    "ProbaMaps",
    "fit_block_track",
    "load_block_track",
    "normalize_stack",
    "predict_stacks",
    "save_block_track",
    "train_block_track",
    "training_rows",
]
