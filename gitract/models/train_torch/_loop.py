"""The epoch loop (:func:`fit_net`): budgets, learning-rate schedule, EMA, checkpoint choice,
and DistributedDataParallel when several processes train together."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

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

__all__ = ["fit_net"]


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


def _set_cosine_lr(opt: torch.optim.Optimizer, config: TrainConfig, progress: float) -> None:
    lr = lr_at(progress, lr=config.lr, warmup_fraction=config.warmup_fraction,
               scheduler=config.scheduler)
    for group in opt.param_groups:
        group["lr"] = lr


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
    rank, n_proc = world()
    device = select_device(config.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    use_amp = bool(config.amp and device.type == "cuda")
    channels_last = bool(config.channels_last and device.type == "cuda")
    monitor = config.monitor if val_loader is not None else "train_loss"
    mode = _MONITORS[monitor]
    net.to(device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    model = _wrap(net, device, n_proc)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    ema = make_ema(net, config.ema_decay) if config.ema_decay is not None else None
    # Rank 0 draws exactly what a single process draws; the others augment differently.
    aug_gen = torch.Generator().manual_seed(int(config.random_state) + 1 + 7919 * rank)
    history = FitHistory(monitor=monitor, device=str(device), amp=use_amp,
                         world_size=n_proc, ema=ema is not None)
    best_state, since_best = None, 0
    budget_s = None if config.max_minutes is None else float(config.max_minutes) * 60.0
    max_epochs = config.max_epochs if config.max_epochs is not None else 10**9
    steps = 0
    show = config.progress and rank == 0
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    start = time.perf_counter()
    with torch.random.fork_rng(devices=fork_devices), _deterministic(config.deterministic):
        torch.manual_seed(int(config.random_state) + rank)
        for epoch in range(1, max_epochs + 1):
            t0 = time.perf_counter()
            model.train()
            if hasattr(train_loader.sampler, "set_epoch"):
                train_loader.sampler.set_epoch(epoch)
            losses, n_seen, out_of_time, out_of_steps = 0.0, 0, False, False
            bar = tqdm(train_loader, desc=f"epoch {epoch}", leave=False, disable=not show)
            n_batches = max(len(train_loader), 1)
            for b, batch in enumerate(bar):
                _set_cosine_lr(opt, config, _progress(
                    epoch - 1 + (b + 1) / n_batches, config.max_epochs,
                    time.perf_counter() - start, budget_s, steps + 1, config.max_steps))
                xb, yb = batch[0].to(device), batch[1].to(device)
                if augment is not None:
                    sizes = batch[2].to(device) if len(batch) > 2 else None
                    xb, yb = augment(xb, yb, aug_gen, sizes)
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                opt.zero_grad(set_to_none=True)
                with autocast(device, use_amp):
                    loss = segmentation_loss(model(xb), yb, loss=config.loss,
                                             pixel_weight=config.bce_weight,
                                             focal_gamma=config.focal_gamma)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                else:
                    loss.backward()
                if config.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                sync_buffers(net)
                if ema is not None:
                    ema.update_parameters(net)
                steps += 1
                loss_value = float(loss.detach())
                losses += loss_value * xb.shape[0]
                n_seen += xb.shape[0]
                bar.set_postfix(loss=f"{loss_value:.4f}")
                if config.max_steps is not None and steps >= config.max_steps:
                    out_of_steps = True
                    break
                if budget_s is not None and any_process(
                        time.perf_counter() - start > budget_s, device):
                    out_of_time = True
                    break
            bar.close()
            record = {"epoch": epoch, "train_loss": losses / max(n_seen, 1),
                      "lr": float(opt.param_groups[0]["lr"]), "n_seen": n_seen,
                      "step": steps}
            scored = ema.module if ema is not None else net
            if val_loader is not None:
                ev = evaluate_net(scored, val_loader, device=device, amp=use_amp,
                                  bce_weight=config.bce_weight, loss=config.loss,
                                  focal_gamma=config.focal_gamma, distributed=n_proc > 1,
                                  channels_last=channels_last)
                record.update(val_loss=ev["loss"], val_dice=ev["dice"],
                              val_dice_per_class=ev["dice_per_class"])
            record["seconds"] = time.perf_counter() - t0
            # Every process takes rank 0's figures, so all make the same choices below.
            record = broadcast_object(record)
            history.epochs.append(record)
            value = float(record[monitor])
            if _better(value, history.best_value, mode):
                history.best_epoch, history.best_value, since_best = epoch, value, 0
                best_state = {k: v.detach().to("cpu", copy=True)
                              for k, v in scored.state_dict().items()}
                if config.checkpoint_path and rank == 0:
                    save_checkpoint(config.checkpoint_path, {
                        "state_dict": best_state, "epoch": epoch, monitor: value})
            else:
                since_best += 1
            if show:
                extra = (f" val_loss {record['val_loss']:.4f} val_dice {record['val_dice']:.4f}"
                         if val_loader is not None else "")
                tqdm.write(f"epoch {epoch}: train_loss {record['train_loss']:.4f}{extra}")
            if out_of_steps:
                history.stopped = "max_steps"
                break
            if out_of_time:
                history.stopped = "max_minutes"
                break
            if config.patience is not None and since_best >= config.patience:
                history.stopped = "patience"
                break
        else:
            history.stopped = "max_epochs"
    history.steps = steps
    history.seconds = time.perf_counter() - start
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return history
