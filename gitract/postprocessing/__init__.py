"""Probability maps -> masks, the one postprocessing stage every track goes through.

- :mod:`._thresholds`: per-class thresholds and a 2D minimum component size, chosen on
  validation stacks (:func:`tune_thresholds`, or per scan :func:`sweep_statistics` summed
  and chosen by :func:`tuning_from_statistics`);
- :mod:`._volume`: the volume steps after the thresholds (an empty-slice gate, a z-range
  from the training cases, 3D connected components), :class:`PostprocessChoice`;
- :mod:`._stage`: :class:`Postprocess`, both in order (what is scored and predicted);
- :mod:`._tune`: choosing those steps per class on validation scans, as per-scan sums
  (:func:`postprocess_statistics`, :func:`postprocess_from_statistics`).

Nothing here reads a test case: the evaluation passes validation scans to the tuners and
training scans to :func:`class_positions`.
"""

from gitract.postprocessing._thresholds import (
    DEFAULT_CONVENTIONS,
    DEFAULT_GRID,
    ThresholdTuning,
    apply_thresholds,
    hausdorff_pool_factor,
    remove_small_components,
    sweep_statistics,
    tune_thresholds,
    tuning_from_statistics,
)
from gitract.postprocessing._stage import Postprocess
from gitract.postprocessing._tune import (
    STEP_COLUMNS,
    chosen_thresholds,
    class_positions,
    combine_positions,
    postprocess_from_statistics,
    postprocess_statistics,
    shift_threshold,
)
from gitract.postprocessing._volume import (
    ClassPostprocess,
    PostprocessChoice,
    component_sizes_3d,
    drop_small_components_3d,
    relative_positions,
    slice_evidence,
    slice_keep,
)

__all__ = [
    "DEFAULT_CONVENTIONS",
    "DEFAULT_GRID",
    "STEP_COLUMNS",
    "ClassPostprocess",
    "Postprocess",
    "PostprocessChoice",
    "ThresholdTuning",
    "apply_thresholds",
    "chosen_thresholds",
    "class_positions",
    "combine_positions",
    "component_sizes_3d",
    "drop_small_components_3d",
    "hausdorff_pool_factor",
    "postprocess_from_statistics",
    "postprocess_statistics",
    "relative_positions",
    "remove_small_components",
    "shift_threshold",
    "slice_evidence",
    "slice_keep",
    "sweep_statistics",
    "tune_thresholds",
    "tuning_from_statistics",
]
