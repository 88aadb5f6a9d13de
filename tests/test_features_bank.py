"""The filter bank in mm (BankFeaturizer) and the slice context (2.5D neighbours)."""

from __future__ import annotations

import numpy as np
import pytest

from gitract.features import BankFeaturizer, SliceContext, make_featurizer, slice_context


def _scene(spacing: float, extent_mm: float = 96.0) -> np.ndarray:
    """A smooth phantom defined in mm, sampled at ``spacing`` mm per pixel."""
    n = int(round(extent_mm / spacing))
    centres = np.arange(n) * spacing  # pixel k sits at k * spacing mm
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    blobs = [(30.0, 40.0, 8.0, 0.6), (60.0, 55.0, 14.0, 0.4), (45.0, 70.0, 5.0, 0.5)]
    image = sum(a * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * w**2)) for r, c, w, a in blobs)
    return image.astype(np.float32)


def _bank_columns(featurizer: BankFeaturizer) -> list[int]:
    names = featurizer.feature_names()
    return [i for i, n in enumerate(names) if n.endswith("mm")]


def test_bank_scales_follow_the_spacing():
    """One scene at 0.5 and 1.0 mm per pixel: the bank columns agree at the same points
    in mm; the pixel-scale filters (the old set) do not."""
    points_mm = np.array([[30.0, 40.0], [50.0, 50.0], [60.0, 62.0], [44.0, 66.0]])
    out = {}
    for spacing in (0.5, 1.0):
        image = _scene(spacing)
        rc = np.round(points_mm / spacing).astype(int)
        bank = BankFeaturizer(block_size=9, scales_mm=(2.0, 4.0, 8.0))
        X = bank.transform(image, rc[:, 0], rc[:, 1], SliceContext(spacing=(spacing, spacing)))
        old = make_featurizer("filters", block_size=9, sigmas=(2.0, 4.0, 8.0))
        out[spacing] = (X[:, _bank_columns(bank)], old.transform(image, rc[:, 0], rc[:, 1])[:, :12])
    fine, coarse = out[0.5][0], out[1.0][0]
    scale = np.abs(fine).max(axis=0) + 1e-3
    assert np.max(np.abs(fine - coarse) / scale) < 0.1
    old_fine, old_coarse = out[0.5][1], out[1.0][1]
    old_scale = np.abs(old_fine).max(axis=0) + 1e-3
    assert np.max(np.abs(old_fine - old_coarse) / old_scale) > 0.1


def test_bank_names_match_columns_and_reject_pixel_sigmas():
    bank = BankFeaturizer(block_size=9, neighbours=True)
    image = _scene(1.5)
    X = bank.transform(image, np.array([10, 20]), np.array([30, 40]))
    assert X.shape == (2, len(bank.feature_names())) and X.dtype == np.float32
    assert "dog_0.5mm" in bank.feature_names() and "stlo_15mm" in bank.feature_names()
    with pytest.raises(TypeError):
        BankFeaturizer(sigmas=(1.0,))  # the bank's scales are in mm, not pixels
    with pytest.raises(ValueError, match="scales_mm"):
        BankFeaturizer(scales_mm=(0.0, 1.0))


def test_neighbours_are_found_by_true_slice_number_on_sparse_stacks():
    volume = np.stack([np.full((4, 4), float(k), np.float32) for k in range(4)])
    numbers = [39, 56, 57, 101]
    ctx = [slice_context(volume, numbers, s, (0.8, 0.8), max_gap=2) for s in range(4)]
    assert ctx[0].above is None and ctx[0].below is None  # 39: nothing within 2
    assert ctx[1].above[0, 0] == 2 and ctx[1].below is None and ctx[1].gap_above == 1
    assert ctx[2].below[0, 0] == 1 and ctx[2].above is None and ctx[2].gap_below == 1
    assert ctx[3].above is None and ctx[3].below is None
    assert [c.slice_number for c in ctx] == numbers
    assert ctx[0].relative_position == 0.0 and ctx[3].relative_position == 1.0
    wide = slice_context(volume, numbers, 1, (0.8, 0.8), max_gap=20)
    assert wide.below[0, 0] == 0 and wide.gap_below == 17
    # not by position in the stack: slices listed out of order still find 57 above 56
    shuffled = slice_context(volume[[2, 0, 1, 3]], [57, 39, 56, 101], 2, (1.0, 1.0))
    assert shuffled.above[0, 0] == 2 and shuffled.below is None


def test_25d_columns_read_the_neighbours_and_flag_missing_ones():
    bank = BankFeaturizer(block_size=5, scales_mm=(1.0,), neighbour_scales_mm=(1.0,),
                          neighbours=True)
    names = bank.feature_names()
    volume = np.stack([np.full((24, 24), v, np.float32) for v in (0.2, 0.5, 0.9)])
    rows, cols = np.array([12]), np.array([12])

    def columns(numbers, s):
        ctx = slice_context(volume, numbers, s, (1.0, 1.0), max_gap=1)
        row = bank.transform(volume[s], rows, cols, ctx)[0]
        return {n: row[names.index(n)] for n in
                ("nbmean_1mm", "nbdiff_1mm", "nb_has_above", "nb_has_below", "slice_number")}

    both = columns([10, 11, 12], 1)
    assert both["nbmean_1mm"] == pytest.approx(0.5 * (0.9 + 0.2) - 0.5, abs=1e-5)
    assert both["nbdiff_1mm"] == pytest.approx(0.9 - 0.2, abs=1e-5)
    assert (both["nb_has_above"], both["nb_has_below"], both["slice_number"]) == (1, 1, 11)
    sparse = columns([10, 11, 20], 1)  # slice 20 is not a neighbour of 11
    assert sparse["nb_has_above"] == 0 and sparse["nb_has_below"] == 1
    assert sparse["nbdiff_1mm"] == pytest.approx(0.5 - 0.2, abs=1e-5)  # missing -> itself
