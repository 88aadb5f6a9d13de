"""The nnU-Net trainer gitract owns: nnUNetTrainer with a budget, a seed and a clock.

nnU-Net's defaults are 1000 epochs of 250 iterations (50 validation iterations each);
:meth:`GitractTrainer.set_budget` sets them and the seed before :meth:`run_training`,
which is nnU-Net's loop that also stops after the epoch in which ``max_minutes`` ran
out (the learning-rate schedule keeps the full budget's shape, so a clock stop leaves
the rate above zero). Import only after :func:`gitract.models.nnunet.use_folders`.
"""

from __future__ import annotations

import random
import time

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

__all__ = ["GitractTrainer"]


class GitractTrainer(nnUNetTrainer):
    """nnUNetTrainer whose budget and seed come from gitract's track settings."""

    def set_budget(self, *, epochs: int, iterations_per_epoch: int,
                   val_iterations_per_epoch: int, seed: int,
                   max_minutes: float | None = None) -> GitractTrainer:
        """Set the budget (before training starts) and the seed of torch, numpy and
        random (nnU-Net's sampling and augmentation draw from them)."""
        self.num_epochs = int(epochs)
        self.num_iterations_per_epoch = int(iterations_per_epoch)
        self.num_val_iterations_per_epoch = int(val_iterations_per_epoch)
        self.save_every = max(self.num_epochs, 1)  # only the best and the final checkpoint
        self.max_minutes = max_minutes
        self.seed = int(seed)
        self.stopped = "budget"
        return self

    def on_train_start(self) -> None:
        random.seed(self.seed)
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)
        super().on_train_start()

    def run_training(self) -> None:
        """nnU-Net's loop (train, validate, log each epoch), stopping on the clock too."""
        start = time.perf_counter()
        self.on_train_start()
        for _ in range(self.current_epoch, self.num_epochs):
            self.on_epoch_start()
            self.on_train_epoch_start()
            outputs = [self.train_step(next(self.dataloader_train))
                       for _ in range(self.num_iterations_per_epoch)]
            self.on_train_epoch_end(outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                outputs = [self.validation_step(next(self.dataloader_val))
                           for _ in range(self.num_val_iterations_per_epoch)]
                self.on_validation_epoch_end(outputs)
            self.on_epoch_end()
            if self.max_minutes is not None and \
                    time.perf_counter() - start > 60 * self.max_minutes:
                self.stopped = "max_minutes"
                break
        self.on_train_end()

    def curve(self) -> list[dict]:
        """Per epoch: train and validation loss, nnU-Net's pseudo Dice (mean over the
        classes of the validation patches, hard at 0.5) and its moving average, learning
        rate, and the epoch's seconds. The pseudo Dice is not the other tracks'
        ``val_dice``: a net whose probabilities stay under 0.5 early in training has
        pseudo Dice 0 while its validation loss still falls, so the report's convergence
        reads nnU-Net's validation loss."""
        log = self.logger.local_logger.my_fantastic_logging
        n = len(log["train_losses"])
        keys = (("train_loss", "train_losses"), ("val_loss", "val_losses"),
                ("val_pseudo_dice", "mean_fg_dice"), ("ema_val_pseudo_dice", "ema_fg_dice"),
                ("lr", "lrs"))
        seconds = [b - a for a, b in zip(log["epoch_start_timestamps"],
                                         log["epoch_end_timestamps"], strict=False)]
        return [{"epoch": e + 1, **{name: float(log[k][e]) if e < len(log[k]) else None
                                    for name, k in keys},
                 "seconds": float(seconds[e]) if e < len(seconds) else None}
                for e in range(n)]
