"""Block features: what a block classifier sees of the block centred at each pixel.

Two featurizers share one interface (``prepare`` / ``transform_prepared`` /
``transform`` / ``feature_names``):

- ``"raw"`` (:class:`RawBlockFeaturizer`): the flattened block pixels, as in the seed
  project. Slow to fit and weak (FACTS.md: LightGBM took 3 min on 50k 33x33 blocks).
- ``"filters"`` (:class:`FilterFeaturizer`, the default): dense filter responses computed
  once per slice and read at the block centres, block statistics, coarse grids of
  means inside and around the block, and the position of the block inside the body.
  Local texture alone does not find these organs (FACTS.md: Dice 0.14), so most
  features describe context at the block scale and beyond.

Images are (H, W) float32 in [0, 1] (normalised per volume); ``X`` is float32.

Submodules: ``_body`` (:func:`find_body`), ``_raw``, ``_filters`` and ``_make``
(:func:`make_featurizer`). Private helpers are re-exported here for code that imports them
from this module.
"""

from __future__ import annotations

from gitract.features._body import _EPS, BodyInfo, find_body  # noqa: F401
from gitract.features._filters import FilterFeaturizer, _FilterState, _odd  # noqa: F401
from gitract.features._make import FEATURIZER_KINDS, make_featurizer
from gitract.features._raw import RawBlockFeaturizer

__all__ = [
    "FEATURIZER_KINDS",
    "BodyInfo",
    "FilterFeaturizer",
    "RawBlockFeaturizer",
    "find_body",
    "make_featurizer",
]
