"""The block-classifier track: train, predict probability maps, tune, score, save.

One track = a featurizer (:mod:`gitract.features`) + a block classifier
(:mod:`gitract.models.pipelines`, random forest or LightGBM) + per-class thresholds
(:mod:`gitract.postprocessing`). :func:`evaluate_block_track` follows one case-grouped
split: fit on the training cases, tune thresholds on the validation cases, score the
test cases with the competition metric (:func:`gitract.metrics.score_stacks`). The
model used on the test cases is the one fitted on the training cases only.

Every volume (a ``SliceStack``) is normalised with
:func:`gitract.preprocessing.normalize_intensity` before featurising. Block centres of
a slice are drawn with :func:`gitract.blocks.sample_block_centres` under a seed
derived from ``random_state`` and the slice id, so a slice gets the same blocks in
every fold; that lets an optional ``cache`` (a plain dict) keep each slice's
features across folds and classifiers.
"""


from __future__ import annotations

from gitract.evaluation._config import CLASSIFIERS, BlockTrackConfig
from gitract.evaluation._evaluate import (
    TrackResult,
    case_folds,
    cross_validate_block_track,
    evaluate_block_track,
    fixed_case_split,
    resolve_split,
)
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
from gitract.evaluation._unet import evaluate_unet_track

__all__ = [
    "CLASSIFIERS",
    "BlockTrack",
    "BlockTrackConfig",
    "ProbaMaps",
    "TrackResult",
    "case_folds",
    "cross_validate_block_track",
    "evaluate_block_track",
    "evaluate_unet_track",
    "fit_block_track",
    "fixed_case_split",
    "load_block_track",
    "normalize_stack",
    "predict_stacks",
    "resolve_split",
    "save_block_track",
    "train_block_track",
    "training_rows",
]

