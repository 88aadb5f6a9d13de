"""Epoch loop for segmentation nets: budgets, validation checkpointing, seeded runs.

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
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from gitract.models._device import select_device
from gitract.utils.io import atomic_path

__all__ = [
    "FitHistory",
    "TrainConfig",
    "bce_dice_loss",
    "evaluate_net",
    "fit_net",
    "load_checkpoint",
    "make_loader",
    "save_checkpoint",
]

_MONITORS = {"val_dice": "max", "val_loss": "min", "train_loss": "min"}


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`fit_net`.

    Parameters
    ----------
    max_epochs : int or None
        Epoch budget (None: no epoch limit).
    max_steps : int or None
        Budget in optimiser steps (batches); with ``max_epochs`` the first reached ends
        the run.
    max_minutes : float or None
        Wall-clock guard of the training loop in minutes (None: no time limit). With a
        step or epoch budget it only stops a run that is too slow; alone it is the budget
        (and the result then depends on the machine's speed).
    lr, weight_decay : float
        AdamW learning rate and weight decay.
    scheduler : {"cosine", "none"}
        Cosine decay of the learning rate to 1 % of ``lr``, set before every batch from
        the share of the budget used: the larger of the step share (of ``max_steps``) and
        the epoch share (of ``max_epochs``); the time share (of ``max_minutes``) only
        when neither is given.
    monitor : {"val_dice", "val_loss", "train_loss"}
        Value that selects the checkpoint restored at the end; ``val_*`` falls back to
        ``train_loss`` without a validation loader.
    patience : int or None
        Stop after this many epochs without improvement (None: never).
    bce_weight : float
        Loss = ``bce_weight * BCE + (1 - bce_weight) * soft Dice loss``.
    grad_clip : float or None
        Clip the gradient norm to this value.
    device : str
        ``"auto"`` (cuda -> mps -> cpu) or a torch device name.
    amp : bool
        Mixed precision (float16 autocast + grad scaler); used on CUDA only.
    deterministic : bool
        ``torch.use_deterministic_algorithms(True)`` during the fit (restored after).
    random_state : int
        Seed of the global torch RNG inside the fit (dropout) and of the augmentation.
    checkpoint_path : str or None
        Also write the best checkpoint there (atomically) whenever it improves.
    progress : bool
        tqdm progress bars (one per epoch).
    """

    max_epochs: int | None = 20
    max_minutes: float | None = None
    max_steps: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    monitor: str = "val_dice"
    patience: int | None = None
    bce_weight: float = 0.5
    grad_clip: float | None = None
    device: str = "auto"
    amp: bool = True
    deterministic: bool = False
    random_state: int = 0
    checkpoint_path: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_epochs is None and self.max_minutes is None and self.max_steps is None:
            raise ValueError("give max_steps, max_epochs and/or max_minutes, got none")
        for name in ("max_epochs", "max_steps"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        if self.max_minutes is not None and not float(self.max_minutes) > 0:
            raise ValueError(f"max_minutes must be > 0 or None, got {self.max_minutes!r}")
        if self.monitor not in _MONITORS:
            raise ValueError(f"monitor must be one of {sorted(_MONITORS)}, got {self.monitor!r}")
        if self.scheduler not in ("cosine", "none"):
            raise ValueError(f"scheduler must be 'cosine' or 'none', got {self.scheduler!r}")
        if not 0.0 <= self.bce_weight <= 1.0:
            raise ValueError(f"bce_weight must be in [0, 1], got {self.bce_weight!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ValueError(f"patience must be a positive int or None, got {self.patience!r}")


@dataclass
class FitHistory:
    """What :func:`fit_net` did.

    Attributes
    ----------
    epochs : list of dict
        One record per epoch: ``epoch`` (1-based), ``train_loss``, ``val_loss``,
        ``val_dice`` (mean over classes of the hard Dice at 0.5 over the whole validation
        set; classes absent from truth and prediction left out), ``val_dice_per_class``,
        ``lr`` (at the last batch), ``seconds``, ``n_seen`` (training slices seen),
        ``step`` (optimiser steps done by the end of the epoch).
    monitor : str
        The monitored value actually used.
    best_epoch : int or None
        Epoch whose weights were restored.
    best_value : float or None
    stopped : str
        ``"max_steps"``, ``"max_epochs"``, ``"max_minutes"`` (the time guard fired) or
        ``"patience"``.
    steps : int
        Optimiser steps done.
    seconds : float
        Wall-clock time of the loop.
    device : str
    amp : bool
        Whether mixed precision was used.
    """

    epochs: list[dict] = field(default_factory=list)
    monitor: str = "val_dice"
    best_epoch: int | None = None
    best_value: float | None = None
    stopped: str = ""
    steps: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    amp: bool = False

    def to_dict(self) -> dict:
        """JSON-ready copy (NaN becomes None)."""

        def _clean(v):
            if isinstance(v, float) and math.isnan(v):
                return None
            if isinstance(v, list):
                return [_clean(x) for x in v]
            if isinstance(v, dict):
                return {k: _clean(x) for k, x in v.items()}
            return v

        return _clean(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> FitHistory:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def bce_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, *, bce_weight: float = 0.5, smooth: float = 1.0
) -> torch.Tensor:
    """Multilabel segmentation loss: weighted BCE plus soft Dice loss.

    The Dice term is computed per class over the whole batch (so slices where a class is
    absent do not each count as a failed Dice) and averaged over classes.

    Parameters
    ----------
    logits, target : tensor of shape (N, C, H, W)
        Raw logits and float targets in [0, 1].

    Returns
    -------
    scalar tensor
    """
    logits = logits.float()
    bce = nn.functional.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    dims = (0, 2, 3)
    inter = (prob * target).sum(dims)
    total = prob.sum(dims) + target.sum(dims)
    dice_loss = 1.0 - ((2.0 * inter + smooth) / (total + smooth)).mean()
    return bce_weight * bce + (1.0 - bce_weight) * dice_loss


def make_loader(
    x: NDArray[np.float32],
    y: NDArray[np.float32] | None,
    *,
    batch_size: int,
    shuffle: bool,
    random_state: int = 0,
) -> DataLoader:
    """A single-process DataLoader over in-memory arrays, shuffled by its own generator.

    Parameters
    ----------
    x : ndarray of shape (N, K, H, W), float32
    y : ndarray of shape (N, C, H, W), float32, or None
    batch_size : int
    shuffle : bool
    random_state : int
        Seed of the loader's ``torch.Generator`` (the shuffling order).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    tensors = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))]
    if y is not None:
        tensors.append(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)))
    gen = torch.Generator().manual_seed(int(random_state))
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle,
                      generator=gen, num_workers=0)


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate_net(
    net: nn.Module,
    loader: DataLoader,
    *,
    device: torch.device | str = "cpu",
    amp: bool = False,
    bce_weight: float = 0.5,
    threshold: float = 0.5,
) -> dict:
    """Mean loss and hard Dice per class of ``net`` over ``loader`` (eval mode).

    Returns
    -------
    dict
        ``{"loss": float, "dice": float, "dice_per_class": list of float}``; the Dice of
        a class is pooled over all pixels of the loader (NaN when the class is absent
        from both truth and prediction), ``dice`` is the NaN-ignoring mean.
    """
    device = torch.device(device)
    was_training = net.training
    net.eval()
    total, n, inter, sums = 0.0, 0, None, None
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        with _autocast(device, amp):
            logits = net(xb)
        total += float(bce_dice_loss(logits, yb, bce_weight=bce_weight)) * xb.shape[0]
        n += xb.shape[0]
        pred = (torch.sigmoid(logits.float()) > threshold).float()
        i_b = (pred * yb).sum((0, 2, 3)).double().cpu()
        s_b = (pred.sum((0, 2, 3)) + yb.sum((0, 2, 3))).double().cpu()
        inter = i_b if inter is None else inter + i_b
        sums = s_b if sums is None else sums + s_b
    net.train(was_training)
    if n == 0:
        raise ValueError("the validation loader is empty")
    per_class = [float(2 * i / s) if s > 0 else math.nan for i, s in zip(inter, sums, strict=True)]
    finite = [d for d in per_class if not math.isnan(d)]
    return {"loss": total / n, "dice": float(np.mean(finite)) if finite else math.nan,
            "dice_per_class": per_class}


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


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` (tensors, dicts, lists, str/int/float/bool/None) atomically.

    The file appears whole or not at all; it can be read with
    :func:`load_checkpoint`, which uses ``weights_only=True``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (no arbitrary code is run).

    Raises
    ------
    ValueError
        When the file is missing or not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise ValueError(f"{path}: cannot read the checkpoint ({exc})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: checkpoint holds a {type(payload).__name__}, not a dict")
    return payload
