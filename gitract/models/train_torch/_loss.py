"""The training loss (BCE + soft Dice) and a net's loss and hard Dice over a loader."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

__all__ = ["bce_dice_loss", "evaluate_net"]


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
