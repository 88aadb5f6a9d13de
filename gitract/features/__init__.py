"""Block features: what a block classifier sees of the block centred at each pixel.

Two featurizers share one interface (``prepare`` / ``transform_prepared`` /
``transform`` / ``feature_names``):

- ``"raw"`` (:class:`RawBlockFeaturizer`): the flattened block pixels, as in the seed
  project. Slow to fit and weak (FACTS.md: LightGBM took 3 min on 50k 33x33 blocks).
- ``"bank"`` (:class:`BankFeaturizer`): the filter bank at scales in mm (per slice from
  its spacing) instead of the pixel-scale filters, the same block features, and with
  ``neighbours`` 2.5D columns from the slices above and below (:class:`SliceContext`).
- ``"filters"`` (:class:`FilterFeaturizer`, the default): dense filter responses computed
  once per slice and read at the block centres, block statistics, coarse grids of
  means inside and around the block, and the position of the block inside the body.
  Local texture alone does not find these organs (FACTS.md: Dice 0.14), so most
  features describe context at the block scale and beyond.

Images are (H, W) float32 in [0, 1] (normalised per volume); ``X`` is float32.

:func:`context_maps` gives the body position and surrounding cell means (the ``pos_*`` /
``ctx_*`` kind of feature) as dense maps, for the block CNN's head and for
``RawBlockFeaturizer(context=True)``.

Submodules: ``_body`` (:func:`find_body`), ``_context`` (:func:`context_maps`), ``_raw``,
``_filters`` and ``_make`` (:func:`make_featurizer`). Private helpers are re-exported here
for code that imports them from this module.
"""

from __future__ import annotations

from gitract.features._bank import BankFeaturizer
from gitract.features._body import _EPS, BodyInfo, find_body  # noqa: F401
from gitract.features._context import (
    ContextPlanes,
    context_maps,
    context_names,
    prepare_context,
)
from gitract.features._filters import FilterFeaturizer, _FilterState, _odd  # noqa: F401
from gitract.features._make import FEATURIZER_KINDS, make_featurizer
from gitract.features._raw import RawBlockFeaturizer
from gitract.features._slice_context import SliceContext, slice_context

__all__ = [
    "FEATURIZER_KINDS",
    "BankFeaturizer",
    "BodyInfo",
    "ContextPlanes",
    "FilterFeaturizer",
    "RawBlockFeaturizer",
    "SliceContext",
    "context_maps",
    "context_names",
    "find_body",
    "make_featurizer",
    "prepare_context",
    "slice_context",
]
