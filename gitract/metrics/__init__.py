"""Segmentation metrics of the UW-Madison GI Tract competition.

The competition score is ``0.4 * Dice + 0.6 * (1 - Hausdorff)``:

* Dice is computed per (slice, class) row and averaged over all rows;
* the 3D Hausdorff distance is computed per (case-day, class) volume on voxel coordinates
  divided by the volume shape ``(S, H, W)`` axis by axis, divided by ``sqrt(3)`` so that
  it lies in [0, 1], and averaged over all volumes.

Means are taken over *rows* (not per class and then averaged), as the competition
grader does; :attr:`ScoreResult.per_class` gives each class's own mean and score.

Empty masks follow :class:`MetricConventions`. The defaults are those of the public
re-implementations of the grader: a pair where both masks are empty is left out of the
mean (NaN), one side empty gives Dice 0 and Hausdorff 1. The official grader is not
public; :data:`CONVENTIONS` names two readings of it: ``default`` (above) and
``mlebench`` (MLE-bench's: the classes OR-merged into one volume per case-day for the
Hausdorff term, and Hausdorff 1 when the prediction holds more than 10 times the truth's
voxels).

Hausdorff distances are exact: the directed distance ``A -> B`` is the largest value of
the exact Euclidean distance transform of ``not B`` (anisotropic sampling ``1/S, 1/H,
1/W``) over the voxels of ``A``, computed on the bounding box of ``A | B`` only; this
equals ``scipy.spatial.distance.directed_hausdorff`` on normalised coordinates.

The code lives in private modules, one topic each: ``_overlap`` (Dice, IoU),
``_distance`` (Hausdorff, centroid distance), ``_conventions`` (weights, empty-mask
rules), ``_volumes`` (one case-day in long format), ``_score`` (:func:`score_stacks`),
``_submission`` (:func:`decode_submission`) and ``_bootstrap`` (case-level bootstrap
intervals and paired tests between tracks).
"""

from gitract.metrics._bootstrap import (
    MIN_PAIRED_CASES,
    CaseTotals,
    Interval,
    WilcoxonResult,
    bootstrap_interval,
    bootstrap_weights,
    case_totals,
    case_totals_by,
    case_values,
    holm_adjust,
    paired_bootstrap,
    paired_wilcoxon,
    seed_bootstrap_interval,
    weighted_metrics,
)

# Private names (``_x``) and the weights are re-exported too, as before the split.
from gitract.metrics._conventions import (
    CONVENTIONS,
    DICE_WEIGHT,  # noqa: F401
    HAUSDORFF_WEIGHT,  # noqa: F401
    MERGED_CLASS,
    PRESET_SOURCES,
    MetricConventions,
)
from gitract.metrics._distance import (
    _KDTREE_FRACTION,  # noqa: F401
    _bounding_box,  # noqa: F401
    _directed_max,  # noqa: F401
    centroid_distance_mm,
    hausdorff_3d,
)
from gitract.metrics._overlap import _check_pair, dice, iou  # noqa: F401
from gitract.metrics._score import (
    ScoreResult,
    _mean,  # noqa: F401
    _score,  # noqa: F401
    score_stacks,
)
from gitract.metrics._submission import decode_submission
from gitract.metrics._volumes import _score_volume, score_volumes  # noqa: F401

__all__ = [
    "CONVENTIONS",
    "MERGED_CLASS",
    "MIN_PAIRED_CASES",
    "PRESET_SOURCES",
    "CaseTotals",
    "Interval",
    "MetricConventions",
    "ScoreResult",
    "WilcoxonResult",
    "bootstrap_interval",
    "bootstrap_weights",
    "case_totals",
    "case_totals_by",
    "case_values",
    "centroid_distance_mm",
    "decode_submission",
    "dice",
    "hausdorff_3d",
    "holm_adjust",
    "iou",
    "paired_bootstrap",
    "paired_wilcoxon",
    "score_stacks",
    "score_volumes",
    "seed_bootstrap_interval",
    "weighted_metrics",
]
