"""In-memory arrays as a seeded DataLoader (:func:`make_loader`)."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["make_loader"]


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
