"""The 2.5D U-Net track: ``UNetConfig``, the ``UNetSegmenter`` facade, augmentation.

Data path (training and prediction alike):

1. per-stack intensity normalisation (:func:`gitract.preprocessing.normalize_intensity`,
   percentile clipping to [0, 1]);
2. 2.5D input: each slice with its neighbours at ``offsets`` (by slice number; edge
   slices repeated, the nearest available slice where a number is absent:
   :func:`stack_25d`);
3. resize to ``image_size`` (bilinear; masks nearest neighbour), or, with
   ``image_size=None``, the native grid: training batches are zero-padded to a multiple
   of ``2**depth`` and prediction pads each slice the same way and crops back;
4. the net returns one sigmoid per class (multilabel: masks overlap);
5. prediction: probabilities resized back (bilinear) to each stack's own grid, giving
   (S, H, W, C) float32 maps. The model stops there: thresholds, metrics and reports
   belong to the comparison engine (:mod:`gitract.compare`), which
   treats them exactly as the block classifiers' probability maps.

Training (:func:`gitract.models.train_torch.fit_net`): AdamW with a linear warm-up and a
cosine decay over the step budget, an EMA of the weights, BCE (or focal) + soft Dice, the
output bias started at each class's pixel prior, and a seeded batch transform on the
device (:func:`augment_batch`: random crops of ``crop_size``, some centred on organs;
rotation, scaling, translation, elastic deformation; gamma, contrast, brightness, noise).
Under ``torchrun`` the same ``fit`` trains with DistributedDataParallel
(:mod:`gitract.models.unet.ddp_train` is the command-line entry point).

Submodules: ``_config`` (:data:`GPU_CONFIG`; :class:`UNetConfig` is torch-free in :mod:`gitract.models._settings`), ``_augment``
(:func:`augment_batch`), ``_slice_files`` (:class:`SliceFiles`, the training dataset) and
``_segmenter`` (:class:`UNetSegmenter`), ``ddp_train`` (``python -m`` entry point, one or
several processes); the torch-free numpy side is
:mod:`gitract.models._unet_data`. Private helpers are re-exported here
for code that imports them from this module.
"""

from __future__ import annotations

from gitract.models._unet_data import neighbour_indices, stack_25d
from gitract.models.unet._augment import _uniform, augment_batch  # noqa: F401
from gitract.models.unet._config import ARCHITECTURES, GPU_CONFIG, UNetConfig
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
    "ARCHITECTURES",
    "GPU_CONFIG",
    "UNetConfig",
    "UNetSegmenter",
    "augment_batch",
    "neighbour_indices",
    "stack_25d",
]
