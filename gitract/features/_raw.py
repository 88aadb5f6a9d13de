"""Flattened block pixels as features (:class:`RawBlockFeaturizer`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gitract.blocks import _check_image, check_block_size, extract_blocks

__all__ = ["RawBlockFeaturizer"]


@dataclass
class RawBlockFeaturizer:
    """Flattened block pixels (``(bs // pixel_step) ** 2``-ish features per block).

    Parameters
    ----------
    block_size : int, default 33
    pixel_step : int, default 1
        Keep every ``pixel_step``-th pixel of the block along each axis.
    """

    block_size: int = 33
    pixel_step: int = 1

    def __post_init__(self) -> None:
        check_block_size(self.block_size)
        if not isinstance(self.pixel_step, (int, np.integer)) or self.pixel_step < 1:
            raise ValueError(f"pixel_step must be a positive int, got {self.pixel_step!r}")

    def prepare(self, image: NDArray[np.floating]) -> NDArray[np.float32]:
        """The image as float32 (nothing to precompute)."""
        return _check_image(image).astype(np.float32, copy=False)

    def transform_prepared(self, state: NDArray[np.float32], rows, cols) -> NDArray[np.float32]:
        """``X`` of shape (n, n_features), float32, from :meth:`prepare`'s state."""
        blocks = extract_blocks(state, rows, cols, block_size=self.block_size)
        blocks = blocks[:, :: self.pixel_step, :: self.pixel_step]
        return np.ascontiguousarray(blocks.reshape(len(blocks), -1), dtype=np.float32)

    def transform(self, image: NDArray[np.floating], rows, cols) -> NDArray[np.float32]:
        """``X`` of shape (n, n_features), float32, for the blocks centred at rows/cols."""
        return self.transform_prepared(self.prepare(image), rows, cols)

    def feature_names(self) -> list[str]:
        """``px_{row}_{col}`` offsets from the block's top-left corner."""
        kept = range(0, self.block_size, self.pixel_step)
        return [f"px_{i}_{j}" for i in kept for j in kept]
