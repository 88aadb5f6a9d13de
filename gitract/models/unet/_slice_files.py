"""Training slices on disk: :func:`prepare_files` writes them, :class:`SliceFiles` reads
them, :class:`PadCollate` batches slices of different sizes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as F
from torch.utils.data import Dataset

from gitract.data.record import SliceStack
from gitract.models._unet_data import (
    neighbour_indices,
    network_grid,
    prepare_masks,
    prepare_volume,
)

__all__ = ["PadCollate", "PreparedFiles", "SliceFiles", "StackFiles", "prepare_files"]

class StackFiles(NamedTuple):
    """One prepared stack: its input and target ``.npy`` files, the (S, K) 2.5D
    neighbour positions, and its key and slice numbers (the validation volumes)."""

    x_path: str
    y_path: str
    neighbours: NDArray
    key: str
    slice_numbers: tuple[int, ...]


#: One :class:`StackFiles` per stack.
PreparedFiles = list[StackFiles]


def prepare_files(
    stacks: Sequence, folder: Path, name: str, *, image_size: int | None,
    percentiles: tuple[float, float], offsets: Sequence[int], spacing_mm: float | None = None,
) -> tuple[PreparedFiles, tuple[str, ...], NDArray[np.float64]]:
    """Write each stack's prepared inputs and targets to ``folder`` (a pair of ``.npy``
    files per stack, on the grid :func:`gitract.models._unet_data.network_grid` gives).

    ``stacks`` may hold SliceStacks or sources with a ``read()`` method, read here one at
    a time. Returns ``(files, classes, foreground)``: ``foreground[c]`` is the share of
    pixels labelled with class ``c`` (for the prior of the net's output bias).
    """
    if isinstance(stacks, SliceStack) or not isinstance(stacks, Sequence) or not stacks:
        raise ValueError(f"{name} must be a non-empty list of SliceStack, got {stacks!r:.80}")
    folder.mkdir(parents=True, exist_ok=True)
    files, classes = [], None
    counts, pixels = None, 0
    for i, item in enumerate(stacks):
        stack = item.read() if hasattr(item, "read") else item
        if not isinstance(stack, SliceStack):
            raise TypeError(f"{name} must hold SliceStack objects, got {type(stack).__name__}")
        if stack.masks is None:
            raise ValueError(f"{name}: stack {stack.key!r} has no masks")
        if classes is None:
            classes = tuple(stack.classes)
        elif tuple(stack.classes) != classes:
            raise ValueError(f"{name}: stack {stack.key!r} classes {stack.classes} != {classes}")
        # One channel per slice (2.5D neighbours are picked per item) and uint8 masks:
        # exactly the arrays of prepare_images / prepare_masks, a quarter of the disk.
        x_path, y_path = folder / f"{i}_x.npy", folder / f"{i}_y.npy"
        grid = network_grid(stack.shape, stack.spacing, image_size=image_size,
                            spacing_mm=spacing_mm)
        np.save(x_path, prepare_volume(stack.image, image_size=grid, percentiles=percentiles))
        y = prepare_masks(stack.masks, image_size=grid).astype(np.uint8)
        np.save(y_path, y)
        c = y.sum(axis=(0, 2, 3), dtype=np.int64)
        counts = c if counts is None else counts + c
        pixels += y.shape[0] * y.shape[2] * y.shape[3]
        files.append(StackFiles(str(x_path), str(y_path),
                                neighbour_indices(stack.slice_numbers, offsets=offsets),
                                str(stack.key), tuple(int(n) for n in stack.slice_numbers)))
    return files, classes, counts / max(pixels, 1)


class SliceFiles(Dataset):
    """(input, target) slices of prepared per-stack ``.npy`` files: a (S, rows, cols)
    volume, (S, C, rows, cols) uint8 masks and the (S, K) 2.5D neighbour positions. Each
    item reads its channels through a memory map (the pages are released with the map)."""

    def __init__(self, files: Sequence[StackFiles]) -> None:
        self.files = list(files)
        self.starts = np.cumsum([0] + [len(f.neighbours) for f in self.files])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int):
        f = int(np.searchsorted(self.starts, i, side="right") - 1)
        x_path, y_path, neighbours = self.files[f][:3]
        j = i - int(self.starts[f])
        x = np.array(np.load(x_path, mmap_mode="r")[neighbours[j]], dtype=np.float32)
        y = np.array(np.load(y_path, mmap_mode="r")[j], dtype=np.float32)
        return torch.from_numpy(x), torch.from_numpy(y)


class PadCollate:
    """Batch ``(x, y)`` items of any sizes: zero-pad each at the bottom and right to the
    largest rows and cols of the batch rounded up to ``multiple``; returns
    ``(x, y, sizes)`` with the (N, 2) int64 sizes before padding.

    Examples
    --------
    >>> items = [(torch.ones(3, 5, 7), torch.ones(2, 5, 7)), (torch.ones(3, 8, 4),
    ...          torch.ones(2, 8, 4))]
    >>> x, y, sizes = PadCollate(4)(items)
    >>> tuple(x.shape), tuple(y.shape), sizes.tolist()
    ((2, 3, 8, 8), (2, 2, 8, 8), [[5, 7], [8, 4]])
    """

    def __init__(self, multiple: int = 1) -> None:
        if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
            raise ValueError(f"multiple must be a positive int, got {multiple!r}")
        self.multiple = multiple

    def __call__(self, items):
        sizes = torch.tensor([tuple(x.shape[-2:]) for x, _ in items], dtype=torch.int64)
        m = self.multiple
        rows = -(-int(sizes[:, 0].max()) // m) * m
        cols = -(-int(sizes[:, 1].max()) // m) * m

        def pad(t):
            return F.pad(t, (0, cols - t.shape[-1], 0, rows - t.shape[-2]))

        return (torch.stack([pad(x) for x, _ in items]), torch.stack([pad(y) for _, y in items]),
                sizes)
