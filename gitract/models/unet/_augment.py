"""Seeded augmentation of training batches (:func:`augment_batch`)."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = ["augment_batch"]


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def augment_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    *,
    hflip: float = 0.5,
    vflip: float = 0.0,
    rotate: float = 15.0,
    scale: float = 0.1,
    shift: float = 0.0625,
    gamma: float = 0.3,
    brightness: float = 0.1,
    contrast: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips, affine transform and intensity change of a batch, seeded.

    All random numbers come from ``generator`` (a CPU ``torch.Generator``), so a batch
    is augmented the same way on every device. One affine map per sample moves the
    image (bilinear) and its masks (bilinear, then thresholded at 0.5) together; the
    intensity change (gamma, then contrast and brightness, clipped to [0, 1]) is the
    same for all input channels of a sample.

    Parameters
    ----------
    x : tensor of shape (N, K, H, W), float in [0, 1]
    y : tensor of shape (N, C, H, W), float in {0, 1}
    generator : torch.Generator
    hflip, vflip, rotate, scale, shift, gamma, brightness, contrast
        See :class:`UNetConfig`.

    Returns
    -------
    (x, y) : new tensors of the same shapes
    """
    n = x.shape[0]
    dev = x.device
    flip_c = torch.where(torch.rand(n, generator=generator) < hflip, -1.0, 1.0)
    flip_r = torch.where(torch.rand(n, generator=generator) < vflip, -1.0, 1.0)
    angle = _uniform(n, -rotate, rotate, generator) * math.pi / 180.0
    zoom = _uniform(n, 1.0 - scale, 1.0 + scale, generator)
    t_c = _uniform(n, -shift, shift, generator) * 2.0
    t_r = _uniform(n, -shift, shift, generator) * 2.0
    g = torch.exp(_uniform(n, -math.log1p(gamma), math.log1p(gamma), generator))
    c = _uniform(n, 1.0 - contrast, 1.0 + contrast, generator)
    b = _uniform(n, -brightness, brightness, generator)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # affine_grid maps output (col, row) in [-1, 1] to input coordinates.
    theta = torch.stack([
        torch.stack([cos * flip_c, -sin * flip_r, t_c], dim=1),
        torch.stack([sin * flip_c, cos * flip_r, t_r], dim=1),
    ], dim=1).to(dev, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.grid_sample(y, grid.to(y.dtype), mode="bilinear", padding_mode="zeros",
                      align_corners=False)
    y = (y > 0.5).to(y.dtype)
    shape = (n, 1, 1, 1)
    x = x.clamp(0.0, 1.0) ** g.view(shape).to(dev, x.dtype)
    x = x * c.view(shape).to(dev, x.dtype) + b.view(shape).to(dev, x.dtype)
    return x.clamp(0.0, 1.0), y
