"""The one torch training loop, and the segmentation nets' use of it.

:func:`run_training` is the training loop of every torch model: the segmentation nets
(:func:`fit_net`), the block CNN on sampled blocks and the block CNN trained densely
(crops, or blocks drawn on the fly; :mod:`gitract.models.cnn`). A caller gives it its
batches (``batches(epoch)``), its loss (``step_loss(model, batch)``), its evaluation and
monitor, and its recipe and budget; the loop owns the optimiser steps, AMP, EMA,
DistributedDataParallel, budgets, the checkpoint choice and the progress display.

:func:`fit_net` trains any ``nn.Module`` that maps (N, K, H, W) inputs to (N, C, H, W)
logits against (N, C, H, W) float targets in {0, 1} (multilabel: one sigmoid per class).

- **Budget**: ``max_steps`` (optimiser steps) and/or ``max_epochs``, so that a seed gives
  the same weights on every machine; ``max_minutes`` is a guard (checked after every
  batch; a run that hits it validates the partial epoch and stops, and ``history.stopped``
  says so). A time limit alone is allowed but makes the result machine-dependent.
- **Checkpointing**: after every epoch the monitored value (``val_dice``, ``val_loss``
  or ``train_loss``) is compared with the best so far; the best weights are kept in
  memory (and written atomically to ``checkpoint_path`` when given) and restored at
  the end.
- **Mixed precision**: float16 autocast with a gradient scaler on CUDA only; the CPU
  runs in float32.
- **Reproducibility**: the DataLoader shuffles with its own seeded ``torch.Generator``
  (:func:`make_loader`), augmentation draws from another seeded generator, and the
  global torch RNG (dropout) is forked and seeded for the duration of the fit, so the
  caller's global state is left as it was. On the CPU two runs with the same seed, data
  and thread count give identical weights unless the ``max_minutes`` guard fires. The
  cosine learning rate follows the share of the step (or epoch) budget used, never the
  clock, when such a budget is given; ``history`` records how many steps and epochs ran
  and why the run stopped.

- **Recipe**: AdamW; the learning rate warms up linearly over ``warmup_fraction`` of the
  budget, then follows a cosine to 1 % (:func:`lr_at`); optionally an EMA of the weights
  (:func:`make_ema`) is what validation scores and what the fit returns; loss BCE or focal
  plus soft Dice (:func:`segmentation_loss`).
- **Several processes**: inside :func:`distributed_session` (``torchrun``) :func:`fit_net`
  wraps the net in DistributedDataParallel (synchronised batch norm on CUDA; on the CPU
  rank 0's batch-norm statistics are copied to the others after every step), adds the
  validation sums over processes and lets only rank 0 write checkpoints. AMP and
  channels-last memory format on CUDA.

Submodules: ``_config`` (:class:`TrainConfig`, :class:`FitHistory`), ``_loss`` (losses and
validation scores), ``_schedule`` (learning rate, EMA), ``_distributed``, ``_loader``,
``_run`` (:func:`run_training`, and :func:`fit_net`, its caller for a :class:`TrainConfig`) and ``_checkpoint`` (file io).
The private helpers are re-exported here (``# noqa: F401``) for the code and tests that
import them from this module.
"""

from __future__ import annotations

from gitract.models.train_torch._checkpoint import load_checkpoint, save_checkpoint
from gitract.models.train_torch._config import _MONITORS, FitHistory, TrainConfig  # noqa: F401
from gitract.models.train_torch._distributed import (
    any_process,
    broadcast_object,
    distributed_session,
    sync_buffers,
    world,
)
from gitract.models.train_torch._loader import make_loader
from gitract.models.train_torch._loss import (
    LOSSES,
    autocast,
    bce_dice_loss,
    evaluate_net,
    segmentation_loss,
    valid_mask,
)
from gitract.models.train_torch._run import (
    PROGRESS,
    _better,  # noqa: F401
    _deterministic,  # noqa: F401
    _progress,  # noqa: F401
    fit_net,
    run_training,
)
from gitract.models.train_torch._schedule import ema_decay_at, lr_at, make_ema
from gitract.models.train_torch._volume_score import ValVolume, VolumeScore

__all__ = [
    "LOSSES",
    "PROGRESS",
    "FitHistory",
    "TrainConfig",
    "ValVolume",
    "VolumeScore",
    "any_process",
    "autocast",
    "bce_dice_loss",
    "broadcast_object",
    "distributed_session",
    "ema_decay_at",
    "evaluate_net",
    "fit_net",
    "load_checkpoint",
    "lr_at",
    "make_ema",
    "make_loader",
    "run_training",
    "save_checkpoint",
    "segmentation_loss",
    "sync_buffers",
    "valid_mask",
    "world",
]
