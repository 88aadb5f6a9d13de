"""The one training loop of every torch model (:func:`run_training`), and its caller for a
:class:`TrainConfig` (:func:`fit_net`: the segmentation nets).

The segmentation nets (:func:`~gitract.models.train_torch.fit_net`), the block CNN on a
sample of blocks and the block CNN trained densely (crops, or blocks drawn on the fly)
all train here; each caller brings only what is its own:

- **batches**: ``batches(epoch)`` gives the batches of one epoch (1-based), drawn the
  caller's way (a DataLoader, a permutation of sampled blocks, crops drawn on the fly);
  an "epoch" is whatever ends at an evaluation point (dense training: the steps up to
  the next of its fixed evaluation steps);
- **loss**: ``step_loss(model, batch) -> (loss, weight)``, run under autocast; the
  epoch's ``train_loss`` is the ``weight``-weighted mean; None skips the optimiser step
  (the step still counts towards the budget and the schedule);
- **evaluation and checkpoint choice**: ``evaluate(net) -> dict`` after every epoch, its
  ``monitor`` value compared by ``better`` with the best so far; the best weights are
  restored at the end (without a monitor the last weights are kept);
- **recipe and budget**: AdamW, an optional learning-rate ``schedule`` of the share of
  the budget used, an EMA of the weights, gradient clipping, epochs / optimiser steps /
  a ``max_minutes`` guard, patience, AMP on CUDA, DistributedDataParallel, a seeded and
  forked global torch RNG, deterministic algorithms, a checkpoint file, progress bars.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from gitract.models._device import select_device

from gitract.models.train_torch._checkpoint import save_checkpoint
from gitract.models.train_torch._config import _MONITORS, FitHistory, TrainConfig
from gitract.models.train_torch._distributed import (
    any_process,
    broadcast_object,
    sync_buffers,
    world,
)
from gitract.models.train_torch._loss import autocast, evaluate_net, segmentation_loss
from gitract.models.train_torch._schedule import lr_at, make_ema
from gitract.models.train_torch._volume_score import VolumeScore

__all__ = ["fit_net", "run_training"]

#: Progress displays: a bar over each epoch's batches and a line per epoch (the
#: segmentation nets), one bar over the epochs, or one bar over the steps.
PROGRESS = ("batches", "epochs", "steps")


@contextlib.contextmanager
def _deterministic(flag: bool) -> Iterator[None]:
    if not flag:
        yield
        return
    old = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old)


def _better(value: float, best: float | None, mode: str) -> bool:
    if math.isnan(value):
        return best is None
    if best is None or math.isnan(best):
        return True
    return value > best if mode == "max" else value < best


def _progress(epochs_done: float, max_epochs: int | None, elapsed: float,
              budget_s: float | None, steps_done: int = 0,
              max_steps: int | None = None) -> float:
    """Fraction of the budget used: the larger of the step and epoch fractions; the
    time fraction only when there is neither (so the schedule never reads the clock
    when the run has a reproducible budget)."""
    p = 0.0
    if max_epochs is not None:
        p = epochs_done / max_epochs
    if max_steps is not None:
        p = max(p, steps_done / max_steps)
    if max_epochs is None and max_steps is None and budget_s is not None:
        p = elapsed / budget_s
    return min(p, 1.0)


def _wrap(net: nn.Module, device: torch.device, n_processes: int) -> nn.Module:
    """The module the loop calls: ``net`` itself, or a DistributedDataParallel wrapper
    (with synchronised batch norm on CUDA, so that N processes with batch B/N train like
    one with batch B)."""
    if n_processes == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    # Buffers are broadcast after every step instead (sync_buffers), so that an EMA of
    # them stays the same on every process.
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda"
                                   else None, broadcast_buffers=False)


def _any(flag: bool, device: torch.device, n_proc: int) -> bool:
    """``flag`` of any process of the run (a collective only when several train)."""
    return any_process(flag, device) if n_proc > 1 else bool(flag)


class _Bars:
    """The progress display (``kind`` in :data:`PROGRESS`, None: nothing)."""

    def __init__(self, kind: str | None, desc: str, max_epochs: int | None,
                 max_steps: int | None) -> None:
        if kind is not None and kind not in PROGRESS:
            raise ValueError(f"progress must be one of {PROGRESS} or None, got {kind!r}")
        self.kind, self.desc, self.outer = kind, desc, None
        if kind == "epochs":
            self.outer = tqdm(total=max_epochs, desc=desc, unit="epoch")
        elif kind == "steps":
            self.outer = tqdm(total=max_steps, desc=desc, unit="step")

    def epoch(self, batches: Iterable, epoch: int, n_batches: int | None):
        if self.kind != "batches":
            return batches, None
        bar = tqdm(batches, total=n_batches, desc=f"epoch {epoch}", leave=False)
        return bar, bar

    def step(self, bar, loss_value: float | None) -> None:
        if bar is not None and loss_value is not None:
            bar.set_postfix(loss=f"{loss_value:.4f}")
        if self.kind == "steps":
            self.outer.update(1)

    def epoch_done(self, bar) -> None:
        if bar is not None:
            bar.close()

    def epoch_end(self, record: dict) -> None:
        if self.kind == "batches":
            extra = "".join(f" {k} {record[k]:.4f}" for k in ("val_loss", "val_dice")
                            if k in record)
            tqdm.write(f"epoch {record['epoch']}: train_loss {record['train_loss']:.4f}{extra}")
            return
        if self.outer is not None:
            if self.kind == "epochs":
                self.outer.update(1)
            self.outer.set_postfix(train=record["train_loss"], **(
                {"val": record["val_loss"]} if "val_loss" in record else {}))

    def close(self) -> None:
        if self.outer is not None:
            self.outer.close()


def run_training(
    net: nn.Module,
    batches: Callable[[int], Iterable[Any]],
    step_loss: Callable[[nn.Module, Any], tuple[torch.Tensor, int] | None],
    *,
    device: torch.device,
    lr: float,
    weight_decay: float = 0.0,
    schedule: Callable[[float], float] | None = None,
    max_epochs: int | None = None,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    evaluate: Callable[[nn.Module], dict] | None = None,
    monitor: str | None = None,
    better: Callable[[float, float | None], bool] | None = None,
    patience: int | None = None,
    amp: bool = False,
    ema_decay: float | None = None,
    grad_clip: float | None = None,
    distributed: bool = False,
    seed: int | None = None,
    deterministic: bool = False,
    checkpoint_path: str | None = None,
    progress: str | None = None,
    desc: str = "train",
) -> FitHistory:
    """Train ``net`` in place (on ``device``) and restore its best checkpoint.

    Parameters
    ----------
    net : nn.Module
        Already on ``device``.
    batches : callable
        ``batches(epoch)`` -> the batches of that epoch (1-based), in order; drawn lazily,
        so each is drawn right before its step. Its ``len()``, when it has one, places a
        step inside its epoch for an epoch budget's ``schedule``.
    step_loss : callable
        ``step_loss(model, batch) -> (loss, weight)`` or None (skip the optimiser step);
        ``model`` is ``net`` or its DistributedDataParallel wrapper; run under autocast.
    device : torch.device
    lr, weight_decay : float
        AdamW's.
    schedule : callable, optional
        Learning rate of a step from the share of the budget used when it ends (see
        :func:`_progress`); None: ``lr`` throughout.
    max_epochs, max_steps, max_minutes
        Budget: the run stops at the first one reached (``max_minutes`` is checked after
        every step, on every process); None: no such limit.
    evaluate : callable, optional
        ``evaluate(net) -> dict`` of values added to the epoch's record (the EMA's net
        when there is one); None: the record holds the training figures only.
    monitor : str, optional
        Record key that chooses the checkpoint, compared by ``better(value, best)``
        (``best`` None at first); None: the last weights are kept (and no patience).
    patience : int, optional
        Epochs without a better ``monitor`` value before stopping.
    amp : bool
        float16 autocast and a gradient scaler, on CUDA only.
    ema_decay : float, optional
        Keep (and evaluate, and return) an EMA of the weights (:func:`make_ema`).
    grad_clip : float, optional
        Clip the gradients' global norm.
    distributed : bool
        Train with every process of the ``torch.distributed`` group (when there is one):
        DistributedDataParallel, buffers synchronised after every step, records taken
        from rank 0, checkpoint file written by rank 0.
    seed : int, optional
        Fork the global torch RNG (dropout) for the fit and seed it; None: leave it to
        the caller.
    deterministic : bool
        ``torch.use_deterministic_algorithms(True)`` during the fit.
    checkpoint_path : str, optional
        Write each new best checkpoint there (atomically).
    progress : str, optional
        One of :data:`PROGRESS`, or None.
    desc : str
        Label of the ``"epochs"`` and ``"steps"`` bars.

    Returns
    -------
    FitHistory
        One record per epoch (``epoch``, ``train_loss``, ``lr``, ``n_seen`` (the sum of
        the weights), ``step``, the evaluation's values, ``seconds``); ``best_epoch``
        (1-based) None without a monitor or when no value was better. ``net`` is left in
        eval mode.
    """
    rank, n_proc = world() if distributed else (0, 1)
    use_amp = bool(amp and device.type == "cuda")
    model = _wrap(net, device, n_proc)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    ema = make_ema(net, ema_decay) if ema_decay is not None else None
    history = FitHistory(monitor=monitor or "", device=str(device), amp=use_amp,
                         world_size=n_proc, ema=ema is not None)
    best_state, since_best = None, 0
    budget_s = None if max_minutes is None else float(max_minutes) * 60.0
    last_epoch = max_epochs if max_epochs is not None else 10**9
    steps = 0
    bars = _Bars(progress if rank == 0 else None, desc, max_epochs, max_steps)
    start = time.perf_counter()
    forked = contextlib.nullcontext()
    if seed is not None:
        forked = torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda"
                                       else [])
    with forked, _deterministic(deterministic):
        if seed is not None:
            torch.manual_seed(int(seed))
        for epoch in range(1, last_epoch + 1):
            t0 = time.perf_counter()
            model.train()
            epoch_batches = batches(epoch)
            n_batches = max(len(epoch_batches), 1) if hasattr(epoch_batches, "__len__") else 1
            losses, n_seen, out_of_time, out_of_steps = 0.0, 0, False, False
            shown, bar = bars.epoch(epoch_batches, epoch, n_batches)
            for b, batch in enumerate(shown):
                if schedule is not None:
                    rate = schedule(_progress(epoch - 1 + (b + 1) / n_batches, max_epochs,
                                              time.perf_counter() - start, budget_s,
                                              steps + 1, max_steps))
                    for group in opt.param_groups:
                        group["lr"] = rate
                opt.zero_grad(set_to_none=True)
                with autocast(device, use_amp):
                    out = step_loss(model, batch)
                loss_value = None
                if out is not None:
                    loss, weight = out
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.unscale_(opt)
                    else:
                        loss.backward()
                    if grad_clip is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                    if scaler is not None:
                        scaler.step(opt)
                        scaler.update()
                    else:
                        opt.step()
                    if n_proc > 1:
                        sync_buffers(net)
                    if ema is not None:
                        ema.update_parameters(net)
                    loss_value = float(loss.detach())
                    losses += loss_value * weight
                    n_seen += weight
                steps += 1
                bars.step(bar, loss_value)
                if max_steps is not None and steps >= max_steps:
                    out_of_steps = True
                    break
                if budget_s is not None and _any(time.perf_counter() - start > budget_s,
                                                 device, n_proc):
                    out_of_time = True
                    break
            bars.epoch_done(bar)
            record = {"epoch": epoch, "train_loss": losses / max(n_seen, 1),
                      "lr": float(opt.param_groups[0]["lr"]), "n_seen": n_seen,
                      "step": steps}
            scored = ema.module if ema is not None else net
            if evaluate is not None:
                record.update(evaluate(scored))
            record["seconds"] = time.perf_counter() - t0
            if n_proc > 1:
                # Every process takes rank 0's figures, so all make the same choices below.
                record = broadcast_object(record)
            history.epochs.append(record)
            bars.epoch_end(record)
            if monitor is not None:
                value = float(record[monitor])
                if better(value, history.best_value):
                    history.best_epoch, history.best_value, since_best = epoch, value, 0
                    best_state = {k: v.detach().to("cpu", copy=True)
                                  for k, v in scored.state_dict().items()}
                    if checkpoint_path and rank == 0:
                        save_checkpoint(checkpoint_path, {
                            "state_dict": best_state, "epoch": epoch, monitor: value})
                else:
                    since_best += 1
            if out_of_steps:
                history.stopped = "max_steps"
                break
            if out_of_time:
                history.stopped = "max_minutes"
                break
            if monitor is not None and patience is not None and since_best >= patience:
                history.stopped = "patience"
                break
        else:
            history.stopped = "max_epochs"
    bars.close()
    history.steps = steps
    history.seconds = time.perf_counter() - start
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return history


# ------------------------------------------------------------------ the TrainConfig caller
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
    val_volumes: VolumeScore | None = None,
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
    val_volumes : VolumeScore, optional
        The volumes ``val_loader`` yields, in order: each epoch then also records
        ``val_score``, the competition score of the validation volumes at threshold 0.5
        (the default monitor of the segmentation nets). Required by ``monitor="val_score"``.

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
    if monitor == "val_score" and val_volumes is None:
        raise ValueError("monitor 'val_score' needs val_volumes (the validation volumes "
                         "in the loader's order)")
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
                          channels_last=channels_last, volumes=val_volumes)
        record = {"val_loss": ev["loss"], "val_dice": ev["dice"],
                  "val_dice_per_class": ev["dice_per_class"]}
        if "score" in ev:
            record["val_score"] = ev["score"]
        return record

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
