"""Score weights and how pairs of empty masks count."""

from __future__ import annotations

import math
from dataclasses import dataclass

DICE_WEIGHT = 0.4
HAUSDORFF_WEIGHT = 0.6


@dataclass(frozen=True)
class MetricConventions:
    """How pairs of empty masks count.

    Attributes
    ----------
    dice_both_empty : float
        Dice of a (slice, class) row where prediction and truth are both empty. NaN (the
        default, as the public re-implementation of the grader) leaves the row out of the
        mean; the competition page's text says 0; 1.0 rewards a correct "absent".
    hausdorff_both_empty : float
        Hausdorff of a (case-day, class) volume where both are empty; NaN leaves it out.
    """

    dice_both_empty: float = math.nan
    hausdorff_both_empty: float = math.nan

    def describe(self) -> str:
        """One sentence for reports.

        Examples
        --------
        >>> MetricConventions().describe()[:52]
        'Dice is the mean over (slice, class) rows, Hausdorff'
        """

        def _say(value: float) -> str:
            return "left out of the mean" if math.isnan(value) else f"counted as {value:g}"

        return (
            "Dice is the mean over (slice, class) rows, Hausdorff the mean over "
            "(case-day, class) volumes (normalised coordinates, divided by sqrt(3)); "
            f"rows with both masks empty are {_say(self.dice_both_empty)}, "
            f"volumes with both masks empty are {_say(self.hausdorff_both_empty)}; "
            "one side empty gives Dice 0 and Hausdorff 1; "
            "score = 0.4 Dice + 0.6 (1 - Hausdorff)."
        )
