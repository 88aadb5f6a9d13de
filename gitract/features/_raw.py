"""Flattened block pixels as features (:class:`RawBlockFeaturizer`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gitract.blocks import check_block_size, check_image, extract_blocks
from gitract.features._context import ContextPlanes, context_names, prepare_context

__all__ = ["RawBlockFeaturizer"]


@dataclass
class RawBlockFeaturizer:
    """Flattened block pixels (``(bs // pixel_step) ** 2``-ish features per block).

    Parameters
    ----------
    block_size : int, default 33
    pixel_step : int, default 1
        Keep every ``pixel_step``-th pixel of the block along each axis.
    context : bool, default False
        Append the block's body position and surrounding cell means
        (:func:`~gitract.features.context_names`, 15 columns) after the pixels: what
        ``BlockCNNClassifier(context_features=True)`` takes, and an ablation of the
        random forest on raw pixels plus context.
    """

    block_size: int = 33
    pixel_step: int = 1
    context: bool = False

    def __post_init__(self) -> None:
        check_block_size(self.block_size)
        if not isinstance(self.pixel_step, (int, np.integer)) or self.pixel_step < 1:
            raise ValueError(f"pixel_step must be a positive int, got {self.pixel_step!r}")
        if not isinstance(self.context, (bool, np.bool_)):
            raise ValueError(f"context must be a bool, got {self.context!r}")

    def prepare(self, image: NDArray[np.floating], slice_context: object = None):
        """The image as float32 (with ``context``: and its :class:`ContextPlanes`); the
        slice context (spacing, neighbours) is not used by raw pixels."""
        image = check_image(image).astype(np.float32, copy=False)
        if not self.context:
            return image
        return image, prepare_context(image, self.block_size)

    def transform_prepared(self, state, rows, cols) -> NDArray[np.float32]:
        """``X`` of shape (n, n_features), float32, from :meth:`prepare`'s state."""
        planes = None
        if self.context:
            if not (isinstance(state, tuple) and len(state) == 2
                    and isinstance(state[1], ContextPlanes)):
                raise TypeError("state must come from RawBlockFeaturizer(context=True).prepare")
            state, planes = state
        blocks = extract_blocks(state, rows, cols, block_size=self.block_size)
        blocks = blocks[:, :: self.pixel_step, :: self.pixel_step]
        X = blocks.reshape(len(blocks), -1)
        if planes is not None:
            X = np.concatenate([X, planes.at(rows, cols)], axis=1)
        return np.ascontiguousarray(X, dtype=np.float32)

    def transform(self, image: NDArray[np.floating], rows, cols) -> NDArray[np.float32]:
        """``X`` of shape (n, n_features), float32, for the blocks centred at rows/cols."""
        return self.transform_prepared(self.prepare(image), rows, cols)

    def feature_names(self) -> list[str]:
        """``px_{row}_{col}`` offsets from the block's top-left corner (then the context
        names)."""
        kept = range(0, self.block_size, self.pixel_step)
        names = [f"px_{i}_{j}" for i in kept for j in kept]
        return names + (context_names() if self.context else [])
