"""The segmentation nets' caller of the one loop (:func:`fit_net`): batches from a
DataLoader (moved to the device and augmented there), the segmentation loss, validation
Dice and loss after every epoch, the :class:`TrainConfig` recipe and budget."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn
from torch.utils.data import DataLoader

from gitract.models._device import select_device
from gitract.models.train_torch._config import _MONITORS, FitHistory, TrainConfig
from gitract.models.train_torch._distributed import world
from gitract.models.train_torch._loss import evaluate_net, segmentation_loss
from gitract.models.train_torch._run import _better, run_training
from gitract.models.train_torch._schedule import lr_at

__all__ = ["fit_net"]


class _Epoch:
    """One epoch of a DataLoader, each batch prepared on the device (a sized iterable)."""

    def __init__(self, loader: DataLoader, prepare: Callable) -> None:
        self.loader, self.prepare = loader, prepare

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return map(self.prepare, self.loader)


def fit_net(
    net: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    *,
    config: TrainConfig | None = None,
    augment: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> FitHistory:
    """Train ``net`` in place and restore its best checkpoint.

    Parameters
    ----------
    net : nn.Module
        (N, K, H, W) -> (N, C, H, W) logits; moved to the chosen device.
    train_loader : DataLoader
        Yields ``(x, y)`` float tensors (see :func:`make_loader`), or ``(x, y, sizes)``
        with the (N, 2) rows and cols of each sample before padding. Under
        ``torch.distributed`` each process's loader yields its share (its sampler's
        ``set_epoch`` is called every epoch when it has one).
    val_loader : DataLoader, optional
        Validation batches (no augmentation); selects the checkpoint. Under
        ``torch.distributed`` each process's share; the sums are added over processes.
    config : TrainConfig, optional
        Default: ``TrainConfig()``.
    augment : callable, optional
        ``augment(x, y, generator, sizes) -> (x, y)`` applied to every training batch
        on the device (augmentation, crops); ``generator`` is a CPU ``torch.Generator``
        seeded from ``config.random_state`` (and the process rank), ``sizes`` the
        loader's third item or None.

    Returns
    -------
    FitHistory
        ``net`` holds the weights of ``history.best_epoch`` (their EMA when
        ``config.ema_decay`` is set) and is left in eval mode.
    """
    config = TrainConfig() if config is None else config
    rank, _ = world()
    device = select_device(config.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    use_amp = bool(config.amp and device.type == "cuda")
    channels_last = bool(config.channels_last and device.type == "cuda")
    monitor = config.monitor if val_loader is not None else "train_loss"
    net.to(device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    # Rank 0 draws exactly what a single process draws; the others augment differently.
    aug_gen = torch.Generator().manual_seed(int(config.random_state) + 1 + 7919 * rank)

    def prepare(batch):
        xb, yb = batch[0].to(device), batch[1].to(device)
        if augment is not None:
            sizes = batch[2].to(device) if len(batch) > 2 else None
            xb, yb = augment(xb, yb, aug_gen, sizes)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, yb

    def batches(epoch: int) -> _Epoch:
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        return _Epoch(train_loader, prepare)

    def step_loss(model, batch):
        xb, yb = batch
        return segmentation_loss(model(xb), yb, loss=config.loss, pixel_weight=config.bce_weight,
                                 focal_gamma=config.focal_gamma), xb.shape[0]

    def evaluate(scored) -> dict:
        ev = evaluate_net(scored, val_loader, device=device, amp=use_amp,
                          bce_weight=config.bce_weight, loss=config.loss,
                          focal_gamma=config.focal_gamma, distributed=world()[1] > 1,
                          channels_last=channels_last)
        return {"val_loss": ev["loss"], "val_dice": ev["dice"],
                "val_dice_per_class": ev["dice_per_class"]}

    mode = _MONITORS[monitor]
    return run_training(
        net, batches, step_loss, device=device, lr=config.lr,
        weight_decay=config.weight_decay,
        schedule=partial(lr_at, lr=config.lr, warmup_fraction=config.warmup_fraction,
                         scheduler=config.scheduler),
        max_epochs=config.max_epochs, max_steps=config.max_steps,
        max_minutes=config.max_minutes,
        evaluate=evaluate if val_loader is not None else None,
        monitor=monitor, better=lambda value, best: _better(value, best, mode),
        patience=config.patience, amp=config.amp, ema_decay=config.ema_decay,
        grad_clip=config.grad_clip, distributed=True, seed=int(config.random_state) + rank,
        deterministic=config.deterministic, checkpoint_path=config.checkpoint_path,
        progress="batches" if config.progress else None)
