"""One module per track kind, and the one registry of names.

- :mod:`gitract.tracks.blocks`: kind ``blocks`` (random forest ``rf``, ``lightgbm``, any
  registered scikit-learn-style classifier on block features);
- :mod:`gitract.tracks.block_cnn`: kind (and classifier) ``cnn``, the block CNN;
- :mod:`gitract.tracks.segmentation`: kinds ``unet``, ``unetpp``, ``deeplabv3plus``;
- :mod:`gitract.tracks.nnunet`: kind ``nnunet`` (nnU-Net v2 through its package, an extra).

Each holds its settings dataclass (``from_dict(mapping, path)``: the only owner of the
kind's defaults and checks), its adapter (fit on a dataset index, probability maps per
scan, save / load, training record) and its :func:`register` line. Config checks
(:mod:`gitract.config`), the engine (:mod:`gitract.compare`), the command line and the
reports look kinds and classifiers up here (:func:`track_kind`, :func:`classifier`).
Every kind shares one validation sweep section (:class:`TuningSettings`). Importing this
package imports neither torch nor LightGBM.

Adding a kind: a module (anywhere, a test's too) with a settings dataclass, an adapter
and ``register("name", settings=..., adapter=...)`` (see ``docs/DESIGN.md``).
"""

from __future__ import annotations

from gitract.tracks import block_cnn, blocks, nnunet, segmentation  # noqa: F401  (registers)
from gitract.tracks._block_track import (
    BlockTrack,
    ProbaMaps,
    fit_block_track,
    normalize_stack,
    predict_stacks,
    train_block_track,
    training_rows,
)
from gitract.tracks._registry import (
    Entry,
    classifier,
    classifiers,
    make_adapter,
    make_track,
    model_rules,
    parse_track,
    register,
    track_kind,
    track_kinds,
    unregister,
)
from gitract.tracks._tuning import TUNING_KEYS, PostprocessSettings, TuningSettings
from gitract.tracks.block_cnn import BlockCNNSettings
from gitract.tracks.blocks import (
    BlockSettings,
    BlockTrackAdapter,
    load_block_track,
    save_block_track,
)
from gitract.tracks.segmentation import SegmentationAdapter, SegmentationSettings

__all__ = [
    "TUNING_KEYS",
    "BlockCNNSettings",
    "BlockSettings",
    "BlockTrack",
    "BlockTrackAdapter",
    "Entry",
    "ProbaMaps",
    "SegmentationAdapter",
    "SegmentationSettings",
    "PostprocessSettings",
    "TuningSettings",
    "classifier",
    "classifiers",
    "fit_block_track",
    "load_block_track",
    "make_adapter",
    "make_track",
    "model_rules",
    "normalize_stack",
    "parse_track",
    "predict_stacks",
    "register",
    "save_block_track",
    "track_kind",
    "track_kinds",
    "train_block_track",
    "training_rows",
    "unregister",
]
