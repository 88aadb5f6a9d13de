"""The common in-memory record every later stage consumes, whatever the source format."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray


class DataError(ValueError):
    """Bad input data: the message names the file or row and the problem."""


_ID_RE = re.compile(r"^(case\d+)_(day\d+)_slice_(\d+)$")


def parse_slice_id(slice_id: str) -> tuple[str, str, int]:
    """Split a UW-Madison id into (case, day, slice number).

    Examples
    --------
    >>> parse_slice_id("case123_day20_slice_0065")
    ('case123', 'day20', 65)
    """
    m = _ID_RE.match(slice_id)
    if m is None:
        raise DataError(f"slice id {slice_id!r} does not match 'caseN_dayM_slice_NNNN'")
    return m.group(1), m.group(2), int(m.group(3))


@dataclass
class SliceStack:
    """One stack of 2D slices of one case (and day), e.g. a UW-Madison case-day volume.

    Attributes
    ----------
    image : ndarray of shape (S, H, W), dtype float32
        Intensities as read (not normalised; see ``gitract.preprocessing``).
    masks : ndarray of shape (S, H, W, C), dtype bool, or None
        One channel per class (channels may overlap); None when unlabelled.
    classes : tuple of str
        Class name of each mask channel.
    spacing : (float, float)
        Pixel spacing in mm along rows and columns.
    ids : tuple of str
        One id per slice (UW-Madison ``caseN_dayM_slice_NNNN`` where known).
    case : str
        Patient / case id: the unit splits are grouped by.
    day : str or None
        Scan day (UW-Madison) or None.
    slice_numbers : tuple of int
        Slice index within the original volume, one per slice, increasing.
    source : Path or None
        Where the stack was read from (for error messages and provenance).
    slice_thickness : float or None
        Distance between slices in mm where known.
    meta : dict
        Reader-specific extras (e.g. original dtype, label mapping).
    """

    image: NDArray[np.float32]
    masks: NDArray[np.bool_] | None
    classes: tuple[str, ...]
    spacing: tuple[float, float]
    ids: tuple[str, ...]
    case: str
    day: str | None = None
    slice_numbers: tuple[int, ...] = ()
    source: Path | None = None
    slice_thickness: float | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        if image.ndim != 3:
            raise DataError(f"{self.source}: image must have shape (S, H, W), got {image.shape}")
        self.image = image.astype(np.float32, copy=False)
        n = image.shape[0]
        if self.masks is not None:
            masks = np.asarray(self.masks, dtype=bool)
            if masks.shape != (*image.shape, len(self.classes)):
                raise DataError(
                    f"{self.source}: masks shape {masks.shape} does not match image "
                    f"{image.shape} with {len(self.classes)} classes"
                )
            self.masks = masks
        self.classes = tuple(self.classes)
        self.ids = tuple(self.ids)
        if len(self.ids) != n:
            raise DataError(f"{self.source}: {len(self.ids)} ids for {n} slices")
        if not self.slice_numbers:
            self.slice_numbers = tuple(range(n))
        self.slice_numbers = tuple(int(s) for s in self.slice_numbers)
        if len(self.slice_numbers) != n:
            raise DataError(f"{self.source}: {len(self.slice_numbers)} slice numbers for {n} slices")
        self.spacing = (float(self.spacing[0]), float(self.spacing[1]))

    @property
    def key(self) -> str:
        """Identifier of the stack: ``case_day`` (or ``case``)."""
        return f"{self.case}_{self.day}" if self.day else self.case

    @property
    def n_slices(self) -> int:
        return int(self.image.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of every slice."""
        return int(self.image.shape[1]), int(self.image.shape[2])

    def subset(self, index: NDArray | list[int] | slice) -> SliceStack:
        """A new stack holding only the selected slices."""
        idx = np.arange(self.n_slices)[index]
        return SliceStack(
            image=self.image[idx],
            masks=None if self.masks is None else self.masks[idx],
            classes=self.classes,
            spacing=self.spacing,
            ids=tuple(self.ids[i] for i in idx),
            case=self.case,
            day=self.day,
            slice_numbers=tuple(self.slice_numbers[i] for i in idx),
            source=self.source,
            slice_thickness=self.slice_thickness,
            meta=dict(self.meta),
        )
