"""Readers of two image/mask-pair data sets: derived UW-Madison and ISBI 2012 EM."""

from __future__ import annotations

from pathlib import Path

from gitract.constants import CLASSES, UWMGI_DERIVED_COLOURS
from gitract.data.pairs._read import read_image_mask_pairs
from gitract.data.record import SliceStack
from gitract.data.splits import split_contiguous

#: Approximate in-plane spacing of the derived UW-Madison slices: the originals were
#: mostly 266 px at 1.5 mm and were upscaled to 512 px, so 266 * 1.5 / 512 mm.
UWMGI_DERIVED_SPACING_MM: float = 266 * 1.5 / 512


def read_uwmgi_derived(root: str | Path) -> list[SliceStack]:
    """Read the derived UW-Madison set (``root/images``, ``root/masks``, colour masks).

    Upscaled 512x512 8-bit copies of competition slices: stacks are grouped by case and
    day, but hold only the few sampled slices (``slice_numbers`` are not contiguous).
    The pixel spacing is *approximate* (:data:`UWMGI_DERIVED_SPACING_MM`, ~0.78 mm)
    because the original size per slice is unknown; ``meta["spacing_approximate"]``
    is True. Slice thickness is the competition's 3 mm. Channels never overlap here
    (a colour per pixel), unlike the original RLE masks.

    Parameters
    ----------
    root : path
        Folder holding ``images/`` and ``masks/``.

    Returns
    -------
    list of SliceStack
        One per case-day, classes :data:`gitract.constants.CLASSES`.
    """
    root = Path(root)
    s = UWMGI_DERIVED_SPACING_MM
    return read_image_mask_pairs(
        root / "images", root / "masks", classes=CLASSES, colours=UWMGI_DERIVED_COLOURS,
        spacing=(s, s), slice_thickness=3.0,
        meta={
            "dataset": "uwmgi_derived",
            "spacing_approximate": True,
            "spacing_note": "originals ~266 px at 1.5 mm upscaled to 512 px; true size unknown",
            "intensity": "8-bit rescaled; original 16-bit intensities lost",
            "sparse_slices": True,
        },
    )


def read_isbi2012(root: str | Path, *, n_parts: int = 1) -> list[SliceStack]:
    """Read the ISBI 2012 EM training stack (``root/train/image``, ``root/train/label``).

    30 slices of 512x512 8-bit TEM; class ``"membrane"`` is label value 0 (255 is cell
    interior). Spacing 4 nm in-plane (0.004 mm) and 50 nm sections (0.05 mm), from the
    challenge description. The set is a single volume, i.e. one case ``"isbi"``; with
    ``n_parts > 1`` it is cut into contiguous sub-stacks ``isbi_part0..`` that act as
    pseudo-cases so that case-grouped splits work (neighbouring sections stay
    correlated across part borders: treat scores as optimistic).

    Parameters
    ----------
    root : path
        The ``isbi2012_em`` folder.
    n_parts : int
        Number of contiguous pseudo-cases (1 = the whole stack).

    Returns
    -------
    list of SliceStack
    """
    root = Path(root)
    stacks = read_image_mask_pairs(
        root / "train" / "image", root / "train" / "label", classes=("membrane",),
        label_values={"membrane": 0}, background_value=255, spacing=(0.004, 0.004),
        slice_thickness=0.05, case="isbi",
        meta={"dataset": "isbi2012", "label_note": "membrane = label value 0"},
    )
    if n_parts == 1:
        return stacks
    return [part for st in stacks for part in split_contiguous(st, n_parts)]
