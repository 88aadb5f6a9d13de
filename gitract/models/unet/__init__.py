"""The 2.5D U-Net track: ``UNetConfig``, the ``UNetSegmenter`` facade, augmentation.

Data path (training and prediction alike):

1. per-stack intensity normalisation (:func:`gitract.preprocessing.normalize_intensity`,
   percentile clipping to [0, 1]);
2. 2.5D input: each slice with its neighbours at ``offsets`` (by slice number; edge
   slices repeated, the nearest available slice where a number is absent:
   :func:`stack_25d`);
3. resize to ``image_size`` (bilinear; masks nearest neighbour);
4. the net returns one sigmoid per class (multilabel: masks overlap);
5. prediction: probabilities resized back (bilinear) to each stack's own grid, giving
   (S, H, W, C) float32 maps. The model stops there: thresholds, metrics and reports
   belong to the comparison engine (:mod:`gitract.compare`), which
   treats them exactly as the block classifiers' probability maps.

Training uses BCE + soft Dice (:func:`gitract.models.train_torch.bce_dice_loss`), seeded
augmentation (:func:`augment_batch`) and :func:`gitract.models.train_torch.fit_net`.

Submodules: ``_config`` (:class:`UNetConfig`, :data:`GPU_CONFIG`), ``_augment``
(:func:`augment_batch`), ``_slice_files`` (:class:`SliceFiles`, the training dataset) and
``_segmenter`` (:class:`UNetSegmenter`); the torch-free numpy side is
:mod:`gitract.models._unet_data`. Private helpers are re-exported here
for code that imports them from this module.
"""

from __future__ import annotations

from gitract.models._unet_data import neighbour_indices, stack_25d
from gitract.models.unet._augment import _uniform, augment_batch  # noqa: F401
from gitract.models.unet._config import GPU_CONFIG, UNetConfig
from gitract.models.unet._segmenter import (  # noqa: F401
    _FORMAT,
    _TUNING_KEYS,
    MODEL_FILE,
    UNetSegmenter,
    _check_stacks,
    _Threads,
)
from gitract.models.unet._slice_files import SliceFiles  # noqa: F401

__all__ = [
    "GPU_CONFIG",
    "UNetConfig",
    "UNetSegmenter",
    "augment_batch",
    "neighbour_indices",
    "stack_25d",
]
