"""Learning rate (linear warm-up, then cosine decay) and an EMA of the weights.

Both follow the share of the budget used (steps or epochs), never the clock when such a
budget is given, so a seed gives the same weights on any machine of the same kind.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

__all__ = ["ema_decay_at", "lr_at", "make_ema"]

#: The cosine decays to this fraction of the peak learning rate.
LR_FLOOR = 0.01


def lr_at(progress: float, *, lr: float, warmup_fraction: float = 0.0,
          scheduler: str = "cosine") -> float:
    """Learning rate of the step that ends at ``progress`` (share of the budget, 0..1).

    A linear warm-up from 0 to ``lr`` over the first ``warmup_fraction`` of the budget
    (AdamW's early steps, with unreliable moment estimates, are the ones that throw a
    freshly initialised U-Net about), then a cosine decay to ``LR_FLOOR * lr`` at the end
    (``scheduler="cosine"``) or ``lr`` held (``"none"``).

    Examples
    --------
    >>> lr_at(0.025, lr=1.0, warmup_fraction=0.05)
    0.5
    >>> lr_at(0.05, lr=1.0, warmup_fraction=0.05)
    1.0
    >>> round(lr_at(1.0, lr=1.0, warmup_fraction=0.05), 6)
    0.01
    """
    progress = min(max(float(progress), 0.0), 1.0)
    if warmup_fraction > 0 and progress < warmup_fraction:
        return lr * progress / warmup_fraction
    if scheduler != "cosine":
        return lr
    q = (progress - warmup_fraction) / (1.0 - warmup_fraction) if warmup_fraction < 1 else 1.0
    floor = lr * LR_FLOOR
    return floor + (lr - floor) * 0.5 * (1.0 + math.cos(math.pi * q))


def ema_decay_at(n_averaged: int, decay: float) -> float:
    """Decay of the EMA update after ``n_averaged`` updates: ``min(decay, (1+n)/(10+n))``.

    The ramp (as in TensorFlow's ``ExponentialMovingAverage(num_updates=...)``) keeps the
    first, random weights from lingering in short runs: with a fixed 0.99, 180 steps
    would leave 16 % of the initial weights in the average.

    Examples
    --------
    >>> ema_decay_at(0, 0.99)
    0.1
    >>> ema_decay_at(10_000, 0.99)
    0.99
    """
    return min(float(decay), (1.0 + n_averaged) / (10.0 + n_averaged))


def make_ema(net: nn.Module, decay: float) -> AveragedModel:
    """An :class:`~torch.optim.swa_utils.AveragedModel` of ``net`` holding an EMA of its
    parameters and buffers (batch-norm statistics), updated by ``update_parameters(net)``.

    After ``n`` updates the average is ``a <- d * a + (1 - d) * w`` with
    ``d = ema_decay_at(n, decay)``; the first update copies the weights.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1), got {decay!r}")

    @torch.no_grad()
    def ema_update(averaged: list[torch.Tensor], current: list[torch.Tensor],
                   n_averaged: torch.Tensor) -> None:
        d = ema_decay_at(int(n_averaged), decay)
        floats = [(a, c) for a, c in zip(averaged, current, strict=True)
                  if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1.0 - d)
        for a, c in zip(averaged, current, strict=True):
            if not a.is_floating_point():  # e.g. num_batches_tracked: take the latest
                a.copy_(c)

    return AveragedModel(net, multi_avg_fn=ema_update, use_buffers=True)
