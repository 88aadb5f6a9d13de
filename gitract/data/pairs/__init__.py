"""Readers for folders of image/mask pairs (PNG slices or multi-page TIFF stacks).

A pair is an image file and a mask file with the same stem in two folders. Masks hold
either integer label values (``label_values``) or colours (``colours``); colour masks
are mapped pixel by pixel to the *nearest* reference colour, because resampled masks
(such as the derived UW-Madison set) have blurred, interpolated edges.

Grouping into :class:`~gitract.data.record.SliceStack` records:

- a multi-page file (TIFF stack, ``(S, H, W)``) is one stack of its own, case = file stem;
- 2D files whose stems parse as ``caseN_dayM_slice_NNNN`` (or through ``id_parser``)
  are grouped by case and day and sorted by slice number;
- all other 2D files of the folder form one stack (case = ``case`` or the folder
  name), in natural order of their stems (``2`` before ``10``).

The code lives in private modules: ``_files`` (files as arrays), ``_masks`` (colour and
label masks), ``_read`` (:func:`read_image_mask_pairs`, grouping) and ``_datasets``
(:func:`read_uwmgi_derived`, :func:`read_isbi2012`).
"""

# Private names (``_x``) are re-exported too, as before the split.
from gitract.data.pairs._datasets import (
    UWMGI_DERIVED_SPACING_MM,  # noqa: F401
    read_isbi2012,
    read_uwmgi_derived,
)
from gitract.data.pairs._files import (  # noqa: F401
    _as_slices,
    _check_image,
    _list,
    _natural_key,
    _read_array,
    _to_gray,
)
from gitract.data.pairs._masks import _label_masks, map_colours_to_masks  # noqa: F401
from gitract.data.pairs._read import (
    IdParser,  # noqa: F401
    _group_singles,  # noqa: F401
    _parse_all,  # noqa: F401
    read_image_mask_pairs,
)

__all__ = [
    "map_colours_to_masks",
    "read_image_mask_pairs",
    "read_isbi2012",
    "read_uwmgi_derived",
]
