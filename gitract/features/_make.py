"""A featurizer by name (:func:`make_featurizer`)."""

from __future__ import annotations

from typing import Any

import numpy as np  # noqa: F401 (the doctest uses it)

from gitract.features._bank import BankFeaturizer
from gitract.features._filters import FilterFeaturizer
from gitract.features._raw import RawBlockFeaturizer

__all__ = ["FEATURIZER_KINDS", "make_featurizer"]


FEATURIZER_KINDS: tuple[str, ...] = ("filters", "bank", "raw")

def make_featurizer(
    kind: str = "filters", *, block_size: int = 33, **params: Any
) -> FilterFeaturizer | BankFeaturizer | RawBlockFeaturizer:
    """Featurizer by name.

    Parameters
    ----------
    kind : {"filters", "bank", "raw"}
        ``"filters"``: the pixel-scale features (the study's first feature set);
        ``"bank"``: the filter bank in mm, optionally 2.5D (:class:`BankFeaturizer`);
        ``"raw"``: block pixels.
    block_size : int, default 33
    **params
        Passed to the featurizer's class.

    Examples
    --------
    >>> f = make_featurizer("raw", block_size=3)
    >>> f.transform(np.zeros((4, 4), np.float32), np.array([0]), np.array([1])).shape
    (1, 9)
    """
    if kind == "filters":
        return FilterFeaturizer(block_size=block_size, **params)
    if kind == "bank":
        return BankFeaturizer(block_size=block_size, **params)
    if kind == "raw":
        return RawBlockFeaturizer(block_size=block_size, **params)
    raise ValueError(f"kind must be one of {FEATURIZER_KINDS}, got {kind!r}")
