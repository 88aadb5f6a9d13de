"""Random dihedral transforms of training blocks (:func:`_augment`)."""

from __future__ import annotations

import torch


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
