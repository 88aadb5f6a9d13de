"""Training losses (BCE or focal, plus soft Dice) and a net's loss and hard Dice over a loader."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from gitract.models._settings import LOSSES
from gitract.models.train_torch._volume_score import VolumeScore

__all__ = ["LOSSES", "autocast", "bce_dice_loss", "evaluate_net", "segmentation_loss", "valid_mask"]



def _soft_dice_loss(prob: torch.Tensor, target: torch.Tensor, smooth: float) -> torch.Tensor:
    # Per class over the whole batch, so that slices where a class is absent do not each
    # count as a failed Dice; then averaged over classes.
    dims = (0, 2, 3)
    inter = (prob * target).sum(dims)
    total = prob.sum(dims) + target.sum(dims)
    return 1.0 - ((2.0 * inter + smooth) / (total + smooth)).mean()


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
    return segmentation_loss(logits, target, loss="bce_dice", pixel_weight=bce_weight,
                             smooth=smooth)


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    loss: str = "bce_dice",
    pixel_weight: float = 0.5,
    focal_gamma: float = 2.0,
    smooth: float = 1.0,
) -> torch.Tensor:
    """``pixel_weight * pixel term + (1 - pixel_weight) * soft Dice loss``.

    Parameters
    ----------
    logits, target : tensor of shape (N, C, H, W)
        Raw logits and float targets in [0, 1].
    loss : {"bce_dice", "focal_dice"}
        Pixel term: binary cross-entropy, or the focal loss of Lin et al. (2017),
        ``BCE * (1 - p_t) ** focal_gamma`` (no alpha weighting: the Dice term already
        balances small organs against the background), which down-weights the many easy
        background pixels.
    pixel_weight : float in [0, 1]
    focal_gamma : float >= 0
        0 makes the focal term the BCE.

    Returns
    -------
    scalar tensor (float32)
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    logits = logits.float()
    if loss == "bce_dice":
        pixel = nn.functional.binary_cross_entropy_with_logits(logits, target)
    else:
        bce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = torch.exp(-bce)  # the probability given to the true label
        pixel = (bce * (1.0 - p_t) ** focal_gamma).mean()
    return pixel_weight * pixel + (1.0 - pixel_weight) * _soft_dice_loss(
        torch.sigmoid(logits), target, smooth)


def autocast(device: torch.device, amp: bool):
    """float16 autocast on CUDA when ``amp``; elsewhere a context that does nothing."""
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def valid_mask(sizes: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(N, 1, rows, cols) bool: True inside each sample's own ``sizes[i] = (rows, cols)``
    (the rest is padding added to batch slices of different sizes)."""
    rows = torch.arange(shape[0], device=sizes.device)
    cols = torch.arange(shape[1], device=sizes.device)
    return ((rows[None, :, None] < sizes[:, 0, None, None])
            & (cols[None, None, :] < sizes[:, 1, None, None]))[:, None]


@torch.no_grad()
def evaluate_net(
    net: nn.Module,
    loader: DataLoader,
    *,
    device: torch.device | str = "cpu",
    amp: bool = False,
    bce_weight: float = 0.5,
    threshold: float = 0.5,
    loss: str = "bce_dice",
    focal_gamma: float = 2.0,
    distributed: bool = False,
    channels_last: bool = False,
    volumes: VolumeScore | None = None,
) -> dict:
    """Mean loss and hard Dice per class of ``net`` over ``loader`` (eval mode), and the
    competition score of its volumes when ``volumes`` is given.

    Batches are ``(x, y)`` or ``(x, y, sizes)``; with ``sizes`` ((N, 2) rows and cols of
    each sample before padding) the padding is left out of the Dice. With
    ``distributed`` each process passes its share of the data and the sums are added
    over processes (``torch.distributed.all_reduce``), so every process gets the figures
    of the whole set. ``volumes`` (:class:`VolumeScore`) describes the volumes the
    loader yields in order (each process: whole volumes of its own).

    Returns
    -------
    dict
        ``{"loss": float, "dice": float, "dice_per_class": list of float}``; the Dice of
        a class is pooled over all pixels of the loader (NaN when the class is absent
        from both truth and prediction), ``dice`` is the NaN-ignoring mean; with
        ``volumes`` also ``"score"``, the competition score at ``threshold``.
    """
    device = torch.device(device)
    was_training = net.training
    net.eval()
    total = torch.zeros(2, dtype=torch.float64)  # loss sum, samples
    inter = sums = None
    if volumes is not None:
        volumes.start()
    for batch in loader:
        xb, yb = batch[0].to(device), batch[1].to(device)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = net(xb)
        total += torch.tensor([float(segmentation_loss(
            logits, yb, loss=loss, pixel_weight=bce_weight, focal_gamma=focal_gamma))
            * xb.shape[0], xb.shape[0]], dtype=torch.float64)
        pred = (torch.sigmoid(logits.float()) > threshold).float()
        if len(batch) > 2:
            pred = pred * valid_mask(batch[2].to(device), tuple(pred.shape[-2:]))
        if volumes is not None:
            volumes.add(pred.bool().cpu().numpy(), yb.bool().cpu().numpy(),
                        batch[2].numpy() if len(batch) > 2 else None)
        i_b = (pred * yb).sum((0, 2, 3)).double().cpu()
        s_b = (pred.sum((0, 2, 3)) + yb.sum((0, 2, 3))).double().cpu()
        inter = i_b if inter is None else inter + i_b
        sums = s_b if sums is None else sums + s_b
    net.train(was_training)
    terms = torch.as_tensor(volumes.sums() if volumes is not None else np.zeros(4),
                            dtype=torch.float64)
    if distributed:
        import torch.distributed as dist

        if inter is None and volumes is not None:
            # Whole volumes per process: one with none adds zeros to every sum.
            inter = sums = torch.zeros(len(volumes.classes), dtype=torch.float64)
        if inter is None:
            raise ValueError("every process needs validation data (its share is empty)")
        # NCCL reduces CUDA tensors only; gloo takes the CPU ones as they are.
        packed = torch.cat([total, inter, sums, terms]).to(device)
        dist.all_reduce(packed)
        packed = packed.cpu()
        n_c = inter.numel()
        total, inter, sums, terms = (packed[:2], packed[2:2 + n_c], packed[2 + n_c:-4],
                                     packed[-4:])
    if inter is None or total[1] == 0:
        raise ValueError("the validation loader is empty")
    per_class = [float(2 * i / s) if s > 0 else math.nan for i, s in zip(inter, sums, strict=True)]
    finite = [d for d in per_class if not math.isnan(d)]
    out = {"loss": float(total[0] / total[1]),
           "dice": float(np.mean(finite)) if finite else math.nan,
           "dice_per_class": per_class}
    if volumes is not None:
        out["score"] = VolumeScore.score(terms.tolist())
    return out
