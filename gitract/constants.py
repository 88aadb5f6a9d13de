"""Names defined once and imported everywhere."""

from __future__ import annotations

#: UW-Madison GI tract classes, in the order of the mask channels.
CLASSES: tuple[str, ...] = ("large_bowel", "small_bowel", "stomach")

#: Labels are multilabel (one sigmoid per class) because UW-Madison masks overlap.
MODE: str = "multilabel"

#: Priority used when a single "dominant class" label is needed (multi-class view):
#: the first class present in this order wins. Stomach is the least ambiguous,
#: large bowel the most often overlapping.
DOMINANT_PRIORITY: tuple[str, ...] = ("stomach", "small_bowel", "large_bowel")

#: Colour map of the derived UW-Madison image/mask pairs (``uwmgi_derived_512``).
UWMGI_DERIVED_COLOURS: dict[str, tuple[int, int, int]] = {
    "background": (0, 0, 0),
    "small_bowel": (255, 255, 0),
    "large_bowel": (0, 200, 0),
    "stomach": (255, 0, 0),
}
