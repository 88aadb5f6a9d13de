"""Training slices read from prepared per-stack ``.npy`` files (:class:`SliceFiles`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

__all__ = ["SliceFiles"]


class SliceFiles(Dataset):
    """(input, target) slices of prepared per-stack ``.npy`` files: a (S, rows, cols)
    volume, (S, C, rows, cols) uint8 masks and the (S, K) 2.5D neighbour positions. Each
    item reads its channels through a memory map (the pages are released with the map)."""

    def __init__(self, files: Sequence[tuple[str, str, NDArray]]) -> None:
        self.files = list(files)
        self.starts = np.cumsum([0] + [len(n) for _, _, n in self.files])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int):
        f = int(np.searchsorted(self.starts, i, side="right") - 1)
        x_path, y_path, neighbours = self.files[f]
        j = i - int(self.starts[f])
        x = np.array(np.load(x_path, mmap_mode="r")[neighbours[j]], dtype=np.float32)
        y = np.array(np.load(y_path, mmap_mode="r")[j], dtype=np.float32)
        return torch.from_numpy(x), torch.from_numpy(y)
