"""Metric-aware cleaning of one thresholded volume: empty-slice gate, z-range, 3D components.

The score is ``0.4 Dice + 0.6 (1 - 3D Hausdorff)``: a few pixels on an organ-free slice
turn a row that would not count into a Dice of 0, and one stray component sets the
Hausdorff distance of its whole case-day. Three steps, each per class and each
switched off by its neutral value:

- **gate** (``gate_cut``, ``gate_area``): a slice keeps its mask only when its maximum
  probability reaches ``gate_cut`` and its predicted area is at least ``gate_area`` (a
  fraction of the slice's pixels). ``0, 0``: off.
- **z-range** (``z_margin``): a slice keeps its mask only when its relative position in
  the stack, ``(n - first) / (last - first)`` of its slice number ``n``, lies within the
  range where the class occurs in the training cases widened by ``z_margin``. ``inf``:
  off (so is a class never seen in training, and a stack of one slice number).
- **3D components** (``component_fraction``): slices are placed at their true slice
  numbers (a gap in the numbers separates them), components are 26-connected, and a
  component with fewer voxels than ``component_fraction`` times the largest one of the
  volume is dropped (``1``: only the largest is kept, for a one-organ class such as the
  stomach). ``0``: off.

Order: gate, z-range, components (the first two drop whole slices, so the components are
labelled on what they leave).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

__all__ = ["ClassPostprocess", "PostprocessChoice", "component_sizes_3d", "relative_positions",
           "slice_evidence", "slice_keep",
           "drop_small_components_3d"]

_STRUCTURE_3D = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class ClassPostprocess:
    """One class's chosen steps (neutral values: the step is off)."""

    gate_cut: float = 0.0
    gate_area: float = 0.0
    z_margin: float = math.inf
    component_fraction: float = 0.0
    z_range: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        return {"gate_cut": float(self.gate_cut), "gate_area": float(self.gate_area),
                "z_margin": None if math.isinf(self.z_margin) else float(self.z_margin),
                "component_fraction": float(self.component_fraction),
                "z_range": None if self.z_range is None else [float(v) for v in self.z_range]}

    @classmethod
    def from_dict(cls, data: Mapping) -> ClassPostprocess:
        margin = data.get("z_margin")
        z = data.get("z_range")
        return cls(float(data.get("gate_cut", 0.0)), float(data.get("gate_area", 0.0)),
                   math.inf if margin is None else float(margin),
                   float(data.get("component_fraction", 0.0)),
                   None if z is None else (float(z[0]), float(z[1])))


def relative_positions(slice_numbers: Sequence[int], n_slices: int) -> NDArray[np.float64] | None:
    """``(n - first) / (last - first)`` per slice, or None when the stack has fewer than
    two distinct slice numbers (no position to speak of)."""
    numbers = np.asarray(slice_numbers if len(slice_numbers) == n_slices else range(n_slices),
                         dtype=float)
    if n_slices == 0 or numbers.max() == numbers.min():
        return None
    return (numbers - numbers.min()) / (numbers.max() - numbers.min())


def slice_evidence(proba: NDArray, mask: NDArray[np.bool_]) -> tuple[NDArray, NDArray]:
    """Per slice of one class channel (S, H, W): the maximum probability and the predicted
    area as a share of the slice's pixels (what the gate looks at)."""
    n = mask.shape[0]
    return (proba.reshape(n, -1).max(axis=1),
            np.count_nonzero(mask.reshape(n, -1), axis=1) / max(mask[0].size, 1))


def slice_keep(evidence: tuple[NDArray, NDArray], positions: NDArray | None, *,
               gate_cut: float, gate_area: float, z_margin: float,
               z_range: tuple[float, float] | None) -> NDArray[np.bool_]:
    """Which slices of one class keep their mask after the gate and the z-range, from
    :func:`slice_evidence` and :func:`relative_positions`."""
    top, area = evidence
    keep = np.ones(len(top), dtype=bool)
    if gate_cut > 0:
        keep &= top >= gate_cut
    if gate_area > 0:
        keep &= area >= gate_area
    if math.isfinite(z_margin) and z_range is not None and positions is not None:
        keep &= (positions >= z_range[0] - z_margin) & (positions <= z_range[1] + z_margin)
    return keep


def _placed(slice_numbers: Sequence[int], n: int) -> NDArray[np.intp]:
    """Index of each slice in a volume laid out at the true slice numbers (step: the
    smallest difference, so every ``slice_step``-th slice sits next to its neighbour and
    a larger gap leaves empty planes between)."""
    if len(slice_numbers) != n or n < 2:
        return np.arange(n)
    numbers = np.asarray(slice_numbers, dtype=np.int64)
    diffs = np.diff(np.sort(numbers))
    step = int(diffs[diffs > 0].min()) if (diffs > 0).any() else 1
    return np.rint((numbers - numbers.min()) / step).astype(np.intp)


def component_sizes_3d(mask: NDArray[np.bool_], slice_numbers: Sequence[int]
                       ) -> NDArray[np.int64]:
    """Per voxel of an (S, H, W) mask, the size of its 26-connected component with the
    slices at their true numbers (0 off the mask)."""
    n = mask.shape[0]
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.int64)
    at = _placed(slice_numbers, n)
    volume = np.zeros((int(at.max()) + 1, *mask.shape[1:]), dtype=bool)
    volume[at] = mask
    labels, count = ndi.label(volume, structure=_STRUCTURE_3D)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    return sizes[labels[at]]


def drop_small_components_3d(mask: NDArray[np.bool_], slice_numbers: Sequence[int],
                             fraction: float) -> NDArray[np.bool_]:
    """Drop 3D components smaller than ``fraction`` times the largest (``0``: keep all;
    ``1``: only the largest, and any as large)."""
    if fraction <= 0 or not mask.any():
        return mask.copy()
    sizes = component_sizes_3d(mask, slice_numbers)
    return sizes >= fraction * sizes.max()


@dataclass(frozen=True)
class PostprocessChoice:
    """Per class, the steps chosen on validation (:func:`apply` cleans a whole volume)."""

    classes: tuple[str, ...]
    steps: tuple[ClassPostprocess, ...]

    @classmethod
    def off(cls, classes: Sequence[str]) -> PostprocessChoice:
        return cls(tuple(classes), tuple(ClassPostprocess() for _ in classes))

    def apply(self, masks: NDArray[np.bool_], proba: NDArray,
              slice_numbers: Sequence[int] = ()) -> NDArray[np.bool_]:
        """Clean thresholded ``masks`` (S, H, W, C) of one scan given its ``proba``."""
        if masks.ndim != 4 or masks.shape[-1] != len(self.classes):
            raise ValueError(f"masks must have shape (S, H, W, {len(self.classes)}), "
                             f"got {masks.shape}")
        out = masks.copy()
        positions = relative_positions(slice_numbers, masks.shape[0])
        for k, step in enumerate(self.steps):
            keep = slice_keep(slice_evidence(proba[..., k], masks[..., k]), positions,
                              gate_cut=step.gate_cut,
                              gate_area=step.gate_area, z_margin=step.z_margin,
                              z_range=step.z_range)
            channel = out[..., k]
            channel[~keep] = False
            out[..., k] = drop_small_components_3d(channel, slice_numbers,
                                                   step.component_fraction)
        return out

    def to_dict(self) -> dict:
        return {c: s.to_dict() for c, s in zip(self.classes, self.steps, strict=True)}

    @classmethod
    def from_dict(cls, data: Mapping | None, classes: Sequence[str]) -> PostprocessChoice:
        """Inverse of :meth:`to_dict`; None (a run from before this stage): every step off."""
        if not data:
            return cls.off(classes)
        return cls(tuple(classes), tuple(ClassPostprocess.from_dict(data[c]) for c in classes))
