"""Random transforms of training blocks: dihedral (:func:`_augment`) and intensity
(:func:`_augment_intensity`; the same ranges serve dense training's crops)."""

from __future__ import annotations

import torch

#: Intensity augmentation ranges: log-gamma, contrast factor - 1, brightness, noise sd.
#: Mild on purpose: volumes are already normalised to [0, 1] (percentiles).
LOG_GAMMA, CONTRAST, BRIGHTNESS, NOISE_SD = 0.3, 0.1, 0.05, 0.03


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random dihedral transform per block (flips and 90-degree turns keep the centre)."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    turns = torch.randint(0, 4, (n,), generator=gen)
    flip, turns = flip.to(x.device), turns.to(x.device)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    out = x.clone()
    for k in (1, 2, 3):
        sel = turns == k
        if bool(sel.any()):
            out[sel] = torch.rot90(x[sel], k, dims=(-2, -1))
    return out


def _augment_intensity(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random gamma, contrast, brightness and Gaussian noise per block (N, 1, bs, bs)."""
    n = x.shape[0]

    def draw(half_width):
        return ((torch.rand(n, generator=gen) * 2 - 1) * half_width).view(n, 1, 1, 1)

    gamma, contrast, shift = torch.exp(draw(LOG_GAMMA)), 1 + draw(CONTRAST), draw(BRIGHTNESS)
    sd = (torch.rand(n, generator=gen) * NOISE_SD).view(n, 1, 1, 1)
    noise = torch.randn(x.shape, generator=gen) * sd
    return x.clamp(min=0) ** gamma * contrast + shift + noise
