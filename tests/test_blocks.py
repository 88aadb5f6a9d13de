"""Block grids, extraction, labels and class-balanced sampling."""

from __future__ import annotations

import numpy as np
import pytest

from gitract.blocks import (
    block_grid,
    block_labels,
    block_view,
    dominant_labels,
    extract_blocks,
    grid_centres,
    sample_block_centres,
)
from gitract.constants import CLASSES, DOMINANT_PRIORITY

SHAPES = [(64, 64), (50, 37), (17, 100), (1, 5)]


@pytest.mark.parametrize("block_size", [33, 63])
@pytest.mark.parametrize("step", [1, 4, 8, 16])
@pytest.mark.parametrize("shape", SHAPES)
def test_block_grid(shape, step, block_size):
    rows, cols = block_grid(shape, step=step, block_size=block_size)
    for centres, size in ((rows, shape[0]), (cols, shape[1])):
        regular = np.arange(0, size, step)
        expected = regular if regular[-1] == size - 1 else np.append(regular, size - 1)
        np.testing.assert_array_equal(centres, expected)
        assert centres.dtype.kind == "i"
        assert centres[0] == 0 and centres[-1] == size - 1
        assert np.all(np.diff(centres) >= 1) and np.all(np.diff(centres) <= step)
    rr, cc = grid_centres(shape, step=step)
    assert rr.shape == cc.shape == (len(rows) * len(cols),)
    np.testing.assert_array_equal(rr.reshape(len(rows), len(cols))[:, 0], rows)
    np.testing.assert_array_equal(cc.reshape(len(rows), len(cols))[0], cols)


def test_block_grid_offset():
    rows, cols = block_grid((20, 10), step=8, offset=3)
    assert rows.tolist() == [3, 11, 19] and cols.tolist() == [3, 9]


@pytest.mark.parametrize("bad", [0, 32, -3, 2.0, True, "33"])
def test_bad_block_size(bad):
    with pytest.raises(ValueError, match="block_size"):
        extract_blocks(np.zeros((8, 8)), np.array([0]), np.array([0]), block_size=bad)
    with pytest.raises(ValueError, match="block_size"):
        block_grid((8, 8), step=1, block_size=bad)


@pytest.mark.parametrize("kw", [{"step": 0}, {"step": 4, "offset": 8}, {"step": 4, "offset": -1}])
def test_bad_grid_params(kw):
    with pytest.raises(ValueError, match=next(iter(kw)) if "offset" not in kw else "offset"):
        block_grid((8, 8), **kw)


@pytest.mark.parametrize("block_size", [3, 33, 63])
def test_extract_blocks_interior_equals_slicing(rng, block_size):
    image = rng.random((100, 90), dtype=np.float32)
    half = block_size // 2
    rows = rng.integers(half, 100 - half, size=20)
    cols = rng.integers(half, 90 - half, size=20)
    blocks = extract_blocks(image, rows, cols, block_size=block_size)
    assert blocks.shape == (20, block_size, block_size) and blocks.dtype == np.float32
    for b, r, c in zip(blocks, rows, cols, strict=True):
        np.testing.assert_array_equal(b, image[r - half : r + half + 1, c - half : c + half + 1])
        assert b[half, half] == image[r, c]  # centre maps back to its pixel


@pytest.mark.parametrize("block_size", [33, 63])
def test_extract_blocks_reflect_at_border(rng, block_size):
    image = rng.random((40, 70), dtype=np.float32)
    rows = np.array([0, 39, 5, 0])
    cols = np.array([0, 69, 66, 35])
    blocks = extract_blocks(image, rows, cols, block_size=block_size)
    padded = np.pad(image, block_size // 2, mode="reflect")
    for b, r, c in zip(blocks, rows, cols, strict=True):
        np.testing.assert_array_equal(b, padded[r : r + block_size, c : c + block_size])
        assert b[block_size // 2, block_size // 2] == image[r, c]
    # reflect does not repeat the edge: the pixel left of column 0 is column 1
    assert blocks[0][block_size // 2, block_size // 2 - 1] == image[0, 1]


def test_extract_blocks_bad_centres():
    with pytest.raises(ValueError, match="inside"):
        extract_blocks(np.zeros((8, 8)), np.array([8]), np.array([0]), block_size=3)
    with pytest.raises(ValueError, match="int"):
        extract_blocks(np.zeros((8, 8)), np.array([1.0]), np.array([0.0]), block_size=3)


@pytest.mark.parametrize("block_size", [33, 63])
@pytest.mark.parametrize("step", [1, 4, 16])
def test_block_view_matches_extract(rng, block_size, step):
    image = rng.random((45, 38), dtype=np.float32)
    view = block_view(image, block_size=block_size, step=step)
    rows, cols = np.arange(0, 45, step), np.arange(0, 38, step)
    assert view.shape == (len(rows), len(cols), block_size, block_size)
    assert not view.flags.owndata and not view.flags.writeable
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    expected = extract_blocks(image, rr.ravel(), cc.ravel(), block_size=block_size)
    np.testing.assert_array_equal(view.reshape(-1, block_size, block_size), expected)


def _three_class_mask():
    mask = np.zeros((60, 80, 3), dtype=bool)
    mask[10:30, 10:30, 0] = True  # large bowel
    mask[20:40, 20:40, 1] = True  # small bowel, overlaps large bowel
    mask[40:55, 50:75, 2] = True  # stomach
    mask[45:50, 50:60, 0] = True  # large bowel under stomach
    return mask


def test_block_labels_match_mask(rng):
    mask = _three_class_mask()
    rows, cols = rng.integers(0, 60, 50), rng.integers(0, 80, 50)
    labels = block_labels(mask, rows, cols)
    assert labels.shape == (50, 3) and labels.dtype == bool
    np.testing.assert_array_equal(labels, mask[rows, cols])


def test_dominant_labels_priority():
    assert DOMINANT_PRIORITY[0] == "stomach"
    mask = _three_class_mask()
    rows = np.array([0, 15, 25, 35, 47])
    cols = np.array([0, 15, 25, 35, 55])
    y = dominant_labels(mask, rows, cols)
    sb, lb, st = (CLASSES.index(c) + 1 for c in ("small_bowel", "large_bowel", "stomach"))
    assert y.tolist() == [0, lb, sb, sb, st]


def test_sampling_balanced_in_bounds_unique():
    mask = _three_class_mask()
    rows, cols = sample_block_centres(mask, n_per_class=30, background_cap=50, random_state=0)
    assert rows.dtype.kind == "i" and len(rows) == 3 * 30 + 50
    assert rows.min() >= 0 and rows.max() < 60 and cols.min() >= 0 and cols.max() < 80
    flat = rows * 80 + cols
    assert len(np.unique(flat)) == len(flat)
    counts = np.bincount(dominant_labels(mask, rows, cols), minlength=4)
    assert counts.tolist() == [50, 30, 30, 30]


def test_sampling_seeded():
    mask = _three_class_mask()
    a = sample_block_centres(mask, n_per_class=20, background_cap=20, random_state=1)
    b = sample_block_centres(mask, n_per_class=20, background_cap=20, random_state=1)
    c = sample_block_centres(mask, n_per_class=20, background_cap=20, random_state=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not (np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1]))


@pytest.mark.parametrize("border_fraction", [0.0, 0.5, 1.0])
def test_sampling_border_background(border_fraction):
    from scipy import ndimage as ndi

    mask = np.zeros((100, 100, 3), dtype=bool)
    mask[40:60, 40:60, 1] = True
    rows, cols = sample_block_centres(
        mask, n_per_class=10, background_cap=40, border_fraction=border_fraction,
        border_width=5, random_state=0,
    )
    background = ~mask.any(-1)
    near = ndi.distance_transform_edt(background)[rows, cols]
    is_bg = background[rows, cols]
    n_ring = int(np.sum(is_bg & (near <= 5)))
    assert is_bg.sum() == 40 and n_ring == round(40 * border_fraction)


def test_sampling_small_classes_and_body_mask():
    mask = np.zeros((30, 30, 3), dtype=bool)
    mask[5, 5, 2] = True  # one stomach pixel
    body = np.zeros((30, 30), dtype=bool)
    body[:, :20] = True
    rows, cols = sample_block_centres(
        mask, n_per_class=10, background_cap=50, border_fraction=0.2, border_width=2,
        body_mask=body, random_state=0,
    )
    y = dominant_labels(mask, rows, cols)
    assert np.sum(y == 3) == 1 and np.sum(y == 0) == 50
    far = ~mask.any(-1)[rows, cols] & (np.hypot(rows - 5, cols - 5) > 2)
    assert np.all(cols[far] < 20)


def test_sampling_empty_mask_gives_background():
    mask = np.zeros((20, 20, 3), dtype=bool)
    rows, cols = sample_block_centres(mask, n_per_class=5, background_cap=12, random_state=0)
    assert len(rows) == 12


@pytest.mark.parametrize(
    "kw,name",
    [({"n_per_class": 0}, "n_per_class"), ({"n_per_class": 5, "border_fraction": 1.5}, "border_fraction"),
     ({"n_per_class": 5, "background_cap": -1}, "background_cap")],
)
def test_sampling_bad_params(kw, name):
    with pytest.raises(ValueError, match=name):
        sample_block_centres(np.zeros((8, 8, 3), bool), random_state=0, **kw)
