"""The epoch loop (:func:`fit_net`): budgets, learning-rate schedule, checkpoint choice."""

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
from gitract.models.train_torch._loss import _autocast, bce_dice_loss, evaluate_net

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
    lr_min = config.lr * 0.01
    lr = lr_min + (config.lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))
    for group in opt.param_groups:
        group["lr"] = lr


def fit_net(
    net: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    *,
    config: TrainConfig = TrainConfig(),
    augment: Callable[[torch.Tensor, torch.Tensor, torch.Generator],
                      tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> FitHistory:
    """Train ``net`` in place and restore its best checkpoint.

    Parameters
    ----------
    net : nn.Module
        (N, K, H, W) -> (N, C, H, W) logits; moved to the chosen device.
    train_loader : DataLoader
        Yields ``(x, y)`` float tensors (see :func:`make_loader`).
    val_loader : DataLoader, optional
        Validation batches (no augmentation); selects the checkpoint.
    config : TrainConfig
    augment : callable, optional
        ``augment(x, y, generator) -> (x, y)`` applied to every training batch on the
        device; ``generator`` is a CPU ``torch.Generator`` seeded from
        ``config.random_state``.

    Returns
    -------
    FitHistory
        ``net`` holds the weights of ``history.best_epoch`` and is left in eval mode.
    """
    device = select_device(config.device)
    use_amp = bool(config.amp and device.type == "cuda")
    monitor = config.monitor if val_loader is not None else "train_loss"
    mode = _MONITORS[monitor]
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    aug_gen = torch.Generator().manual_seed(int(config.random_state) + 1)
    history = FitHistory(monitor=monitor, device=str(device), amp=use_amp)
    best_state, since_best = None, 0
    budget_s = None if config.max_minutes is None else float(config.max_minutes) * 60.0
    max_epochs = config.max_epochs if config.max_epochs is not None else 10**9
    steps = 0
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    start = time.perf_counter()
    with torch.random.fork_rng(devices=fork_devices), _deterministic(config.deterministic):
        torch.manual_seed(int(config.random_state))
        for epoch in range(1, max_epochs + 1):
            t0 = time.perf_counter()
            net.train()
            losses, n_seen, out_of_time, out_of_steps = 0.0, 0, False, False
            bar = tqdm(train_loader, desc=f"epoch {epoch}", leave=False,
                       disable=not config.progress)
            n_batches = max(len(train_loader), 1)
            for b, (xb, yb) in enumerate(bar):
                if config.scheduler == "cosine":
                    _set_cosine_lr(opt, config, _progress(
                        epoch - 1 + b / n_batches, config.max_epochs,
                        time.perf_counter() - start, budget_s, steps, config.max_steps))
                xb, yb = xb.to(device), yb.to(device)
                if augment is not None:
                    xb, yb = augment(xb, yb, aug_gen)
                opt.zero_grad(set_to_none=True)
                with _autocast(device, use_amp):
                    loss = bce_dice_loss(net(xb), yb, bce_weight=config.bce_weight)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                else:
                    loss.backward()
                if config.grad_clip is not None:
                    nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                steps += 1
                loss_value = float(loss.detach())
                losses += loss_value * xb.shape[0]
                n_seen += xb.shape[0]
                bar.set_postfix(loss=f"{loss_value:.4f}")
                if config.max_steps is not None and steps >= config.max_steps:
                    out_of_steps = True
                    break
                if budget_s is not None and time.perf_counter() - start > budget_s:
                    out_of_time = True
                    break
            bar.close()
            record = {"epoch": epoch, "train_loss": losses / max(n_seen, 1),
                      "lr": float(opt.param_groups[0]["lr"]), "n_seen": n_seen,
                      "step": steps}
            if val_loader is not None:
                ev = evaluate_net(net, val_loader, device=device, amp=use_amp,
                                  bce_weight=config.bce_weight)
                record.update(val_loss=ev["loss"], val_dice=ev["dice"],
                              val_dice_per_class=ev["dice_per_class"])
            record["seconds"] = time.perf_counter() - t0
            history.epochs.append(record)
            value = float(record[monitor])
            if _better(value, history.best_value, mode):
                history.best_epoch, history.best_value, since_best = epoch, value, 0
                best_state = {k: v.detach().to("cpu", copy=True)
                              for k, v in net.state_dict().items()}
                if config.checkpoint_path:
                    save_checkpoint(config.checkpoint_path, {
                        "state_dict": best_state, "epoch": epoch, monitor: value})
            else:
                since_best += 1
            if config.progress:
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
