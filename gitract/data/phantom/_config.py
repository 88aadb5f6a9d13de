"""Configuration of the synthetic abdominal-MRI phantom."""

from __future__ import annotations

from dataclasses import dataclass

#: Image sizes of the UW-Madison scans, as (width, height) in pixels.
KAGGLE_SIZES: tuple[tuple[int, int], ...] = (
    (234, 234),
    (266, 266),
    (276, 276),
    (360, 310),
)

#: Pixel spacings (mm) of the UW-Madison scans.
KAGGLE_SPACINGS: tuple[float, ...] = (1.50, 1.63)


@dataclass(frozen=True)
class PhantomConfig:
    """What :func:`gitract.data.phantom.write_phantom` generates.

    The defaults (6 cases x 2 days x 32 slices, 384 slices in all) are sized so that the
    whole comparison (random forest, LightGBM and block CNN at two block sizes, plus a
    small U-Net) runs in about ten minutes on two CPU cores.

    Parameters
    ----------
    n_cases : int
        Number of patients (``case1`` .. ``caseN``); each has its own anatomy, image
        size, pixel spacing and intensity range.
    n_days : int
        Scans per patient; days differ by a smooth random deformation, bowel motion,
        stomach filling, bias field, noise and a small intensity change.
    n_slices : int
        Slices per scan (at least 4).
    seed : int
        The single seed: the same config gives byte-identical files.
    sizes : tuple of (width, height)
        Image sizes to draw from, one per case.
    spacings : tuple of float
        Pixel spacings (mm) to draw from, one per case.
    empty_fraction : float
        Fraction of each stack, split between both ends, that holds no labelled organ
        (at least one slice at each end is always empty).
    max_intensity : (float, float)
        Range of the per-case 16-bit intensity scale (drawn log-uniformly).
    organ_extent_mm : float
        Cranio-caudal extent of the labelled organs; the slice thickness is this extent
        divided by the number of non-empty slices.
    """

    n_cases: int = 6
    n_days: int = 2
    n_slices: int = 32
    seed: int = 0
    sizes: tuple[tuple[int, int], ...] = KAGGLE_SIZES
    spacings: tuple[float, ...] = KAGGLE_SPACINGS
    empty_fraction: float = 0.25
    max_intensity: tuple[float, float] = (2000.0, 30000.0)
    organ_extent_mm: float = 150.0

    def __post_init__(self) -> None:
        for name in ("n_cases", "n_days", "n_slices", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if self.n_cases < 1 or self.n_days < 1:
            raise ValueError(
                f"n_cases and n_days must be >= 1, "
                f"got {self.n_cases!r}, {self.n_days!r}"
            )
        if self.n_slices < 4:
            raise ValueError(f"n_slices must be >= 4, got {self.n_slices!r}")
        sizes = tuple((int(w), int(h)) for w, h in self.sizes)
        if not sizes or any(w < 64 or h < 64 for w, h in sizes):
            raise ValueError(
                f"sizes must be (width, height) pairs >= 64, got {self.sizes!r}"
            )
        object.__setattr__(self, "sizes", sizes)
        spacings = tuple(float(s) for s in self.spacings)
        if not spacings or any(not 0.1 <= s <= 10 for s in spacings):
            raise ValueError(
                f"spacings must be mm values in [0.1, 10], got {self.spacings!r}"
            )
        object.__setattr__(self, "spacings", spacings)
        if not 0.0 <= self.empty_fraction < 0.9:
            raise ValueError(
                f"empty_fraction must be in [0, 0.9), got {self.empty_fraction!r}"
            )
        low, high = (float(v) for v in self.max_intensity)
        if not 300 <= low <= high <= 60000:
            raise ValueError(
                f"max_intensity must be (low, high) with 300 <= low <= high <= 60000, "
                f"got {self.max_intensity!r}"
            )
        object.__setattr__(self, "max_intensity", (low, high))
        if not self.organ_extent_mm > 0:
            raise ValueError(
                f"organ_extent_mm must be > 0, got {self.organ_extent_mm!r}"
            )

    def empty_slices(self) -> tuple[int, int]:
        """Number of organ-free slices at the (start, end) of every stack.

        Examples
        --------
        >>> PhantomConfig(n_slices=32).empty_slices()
        (4, 4)
        >>> PhantomConfig(n_slices=8, empty_fraction=0.0).empty_slices()
        (1, 1)
        """
        n_empty = max(2, int(round(self.empty_fraction * self.n_slices)))
        n_empty = min(n_empty, self.n_slices - 2)
        start = n_empty // 2
        return start, n_empty - start
