"""Image/mask pair readers: synthetic folders (PNG, TIFF stacks) and the real sets."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import tifffile
from PIL import Image

from gitract.constants import CLASSES, UWMGI_DERIVED_COLOURS
from gitract.data.pairs import (
    UWMGI_DERIVED_SPACING_MM,
    map_colours_to_masks,
    read_image_mask_pairs,
    read_isbi2012,
    read_uwmgi_derived,
)
from gitract.data.record import DataError
from gitract.data.rle import rle_decode, rle_encode

COLOURS = {"background": (0, 0, 0), "a": (255, 0, 0), "b": (0, 200, 0)}


def _image(rng, shape=(16, 20)):
    return rng.integers(0, 255, size=shape, dtype=np.uint8)


def _write_pair(folder, stem, image, mask):
    (folder / "images").mkdir(exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    Image.fromarray(image).save(folder / "images" / f"{stem}.png")
    Image.fromarray(mask).save(folder / "masks" / f"{stem}.png")


def _colour_mask(shape=(16, 20)):
    m = np.zeros((*shape, 3), dtype=np.uint8)
    m[2:6, 3:9] = COLOURS["a"]
    m[8:12, 10:16] = COLOURS["b"]
    return m


def test_nearest_colour_on_blurred_mask():
    from scipy.ndimage import uniform_filter

    labels = np.zeros((40, 40), dtype=int)
    labels[5:20, 5:20] = 1
    labels[22:35, 10:30] = 2
    palette = np.array([COLOURS["background"], COLOURS["a"], COLOURS["b"]], dtype=float)
    sharp = palette[labels]
    blurred = np.rint(uniform_filter(sharp, size=(3, 3, 1))).astype(np.uint8)
    assert len(np.unique(blurred.reshape(-1, 3), axis=0)) > 3  # really blurred
    far = np.sqrt(((blurred[:, :, None, :] - palette) ** 2).sum(-1)).min(-1) > 40
    assert 0.05 < far.mean() < 0.3  # a small image: far more edge than the real masks
    with pytest.raises(DataError, match="reference colour"):
        map_colours_to_masks(blurred, COLOURS, ["a", "b"])
    masks = map_colours_to_masks(blurred, COLOURS, ["a", "b"], max_far_fraction=0.3)
    assert masks.shape == (40, 40, 2) and masks.dtype == bool
    assert not (masks[..., 0] & masks[..., 1]).any()
    # Interiors are exact; edges may move by at most one pixel.
    for k, cls_id in enumerate((1, 2)):
        truth = labels == cls_id
        assert (masks[..., k] != truth).mean() < 0.05
        assert masks[..., k][truth & (uniform_filter(truth.astype(float), 3) == 1)].all()


def test_unknown_colours_raise_naming_file(tmp_path, rng):
    mask = np.full((16, 20, 3), (0, 0, 255), dtype=np.uint8)  # blue: no class is blue
    _write_pair(tmp_path, "x", _image(rng), mask)
    with pytest.raises(DataError, match=r"x\.png.*reference colour"):
        read_image_mask_pairs(tmp_path / "images", tmp_path / "masks", classes=["a", "b"],
                              colours=COLOURS)


def test_uwmgi_ids_group_by_case_day(tmp_path, rng):
    for stem in ("case1_day2_slice_0010", "case1_day2_slice_0002", "case1_day3_slice_0005",
                 "case7_day0_slice_0001"):
        _write_pair(tmp_path, stem, _image(rng), _colour_mask())
    stacks = read_image_mask_pairs(tmp_path / "images", tmp_path / "masks",
                                   classes=["a", "b"], colours=COLOURS, spacing=(0.5, 0.5))
    keys = {s.key: s for s in stacks}
    assert sorted(keys) == ["case1_day2", "case1_day3", "case7_day0"]
    st = keys["case1_day2"]
    assert st.slice_numbers == (2, 10)
    assert st.ids == ("case1_day2_slice_0002", "case1_day2_slice_0010")
    assert st.image.dtype == np.float32 and st.image.shape == (2, 16, 20)
    assert st.masks.shape == (2, 16, 20, 2)
    assert st.masks[0, 3, 4, 0] and st.masks[0, 9, 11, 1] and not st.masks[0, 0, 0].any()
    assert st.spacing == (0.5, 0.5) and st.case == "case1" and st.day == "day2"


def test_plain_names_form_one_stack_in_natural_order(tmp_path, rng):
    images = {str(i): _image(rng) for i in (0, 1, 2, 10)}
    for stem, im in images.items():
        _write_pair(tmp_path, stem, im, (im > 128).astype(np.uint8) * 255)
    (st,) = read_image_mask_pairs(tmp_path / "images", tmp_path / "masks", classes=["fg"],
                                  label_values={"fg": 255}, background_value=0, case="em")
    assert st.case == "em" and st.slice_numbers == (0, 1, 2, 10)
    np.testing.assert_array_equal(st.image[3], images["10"].astype(np.float32))
    np.testing.assert_array_equal(st.masks[3, ..., 0], images["10"] > 128)


def test_rgb_gray_image_becomes_gray(tmp_path, rng):
    gray = _image(rng)
    _write_pair(tmp_path, "case1_day1_slice_0001", np.repeat(gray[..., None], 3, axis=2),
                _colour_mask())
    (st,) = read_image_mask_pairs(tmp_path / "images", tmp_path / "masks", classes=["a"],
                                  colours=COLOURS)
    np.testing.assert_array_equal(st.image[0], gray.astype(np.float32))


def test_tiff_stacks_are_one_stack_each(tmp_path, rng):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    vol = rng.integers(0, 60000, size=(5, 12, 14), dtype=np.uint16)
    lab = rng.integers(0, 3, size=(5, 12, 14), dtype=np.uint8)
    for name in ("vol_a", "vol_b"):
        tifffile.imwrite(tmp_path / "images" / f"{name}.tif", vol)
        tifffile.imwrite(tmp_path / "masks" / f"{name}.tif", lab)
    stacks = read_image_mask_pairs(tmp_path / "images", tmp_path / "masks", classes=["x", "y"],
                                   label_values={"x": 1, "y": 2}, background_value=0,
                                   pattern="*.tif")
    assert [s.case for s in stacks] == ["vol_a", "vol_b"]
    st = stacks[0]
    assert st.image.shape == (5, 12, 14) and st.image.dtype == np.float32
    assert st.image.max() == vol.max()  # raw 16-bit values kept
    np.testing.assert_array_equal(st.masks[..., 1], lab == 2)


@pytest.mark.parametrize(
    "problem, match",
    [
        ("missing_mask", r"img1\.png: image has no mask"),
        ("missing_image", r"img1\.png: mask has no image"),
        ("size", r"img1\.png: mask size"),
        ("unreadable", r"img1\.png: cannot read"),
        ("constant", r"img1\.png: image slice 0 is constant"),
        ("bad_value", r"img1\.png: mask holds values \[7\]"),
    ],
)
def test_bad_inputs_raise_naming_file(tmp_path, rng, problem, match):
    _write_pair(tmp_path, "img0", _image(rng), np.zeros((16, 20), np.uint8))
    mask = np.zeros((16, 20), np.uint8)
    mask[:3] = 255
    _write_pair(tmp_path, "img1", _image(rng), mask)
    if problem == "missing_mask":
        (tmp_path / "masks" / "img1.png").unlink()
    elif problem == "missing_image":
        (tmp_path / "images" / "img1.png").unlink()
    elif problem == "size":
        Image.fromarray(np.zeros((16, 21), np.uint8)).save(tmp_path / "masks" / "img1.png")
    elif problem == "unreadable":
        (tmp_path / "images" / "img1.png").write_bytes(b"not a png")
    elif problem == "constant":
        Image.fromarray(np.full((16, 20), 9, np.uint8)).save(tmp_path / "images" / "img1.png")
    elif problem == "bad_value":
        mask[0, 0] = 7
        Image.fromarray(mask).save(tmp_path / "masks" / "img1.png")
    with pytest.raises(DataError, match=match):
        read_image_mask_pairs(tmp_path / "images", tmp_path / "masks", classes=["fg"],
                              label_values={"fg": 255}, background_value=0)


def test_needs_exactly_one_mask_encoding(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        read_image_mask_pairs(tmp_path, tmp_path, classes=["a"])


# --- real data ------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _read_uwmgi_cached(root):
    return read_uwmgi_derived(root)


@pytest.fixture
def uwmgi_stacks(uwmgi_dir):
    return _read_uwmgi_cached(uwmgi_dir)


@pytest.mark.real_data
def test_uwmgi_derived_loads(uwmgi_stacks):
    stacks = uwmgi_stacks
    assert sum(s.n_slices for s in stacks) == 24
    assert len({s.case for s in stacks}) == 7
    assert len({s.key for s in stacks}) == 13
    for st in stacks:
        assert st.classes == CLASSES
        assert st.shape == (512, 512) and st.image.dtype == np.float32
        assert st.masks.shape == (st.n_slices, 512, 512, 3)
        assert st.spacing == (UWMGI_DERIVED_SPACING_MM, UWMGI_DERIVED_SPACING_MM)
        assert st.meta["spacing_approximate"] is True
        assert list(st.slice_numbers) == sorted(st.slice_numbers)
        assert all(i.startswith(st.key + "_slice_") for i in st.ids)
        assert (st.masks.sum(axis=-1) <= 1).all()  # one colour per pixel
    totals = np.sum([s.masks.sum(axis=(0, 1, 2)) for s in stacks], axis=0)
    assert (totals > 10_000).all(), dict(zip(CLASSES, totals.tolist(), strict=True))
    assert UWMGI_DERIVED_COLOURS["stomach"] == (255, 0, 0)


@pytest.mark.real_data
def test_rle_round_trip_on_every_real_uwmgi_mask(uwmgi_stacks):
    n = 0
    for st in uwmgi_stacks:
        h, w = st.shape
        for s in range(st.n_slices):
            for c in range(len(st.classes)):
                mask = st.masks[s, ..., c]
                for order in ("C", "F"):
                    rle = rle_encode(mask, order=order)
                    if rle:
                        runs = np.array(rle.split(), dtype=np.int64)
                        starts, lengths = runs[0::2], runs[1::2]
                        assert starts.min() >= 1 and (lengths > 0).all()
                        assert (starts + lengths - 1).max() <= h * w
                        assert int(lengths.sum()) == int(mask.sum())
                    back = rle_decode(rle, (h, w), order=order, where=st.ids[s])
                    np.testing.assert_array_equal(back, mask)
                n += 1
    assert n == 24 * 3


@pytest.mark.real_data
def test_isbi2012_loads(isbi_dir):
    (st,) = read_isbi2012(isbi_dir)
    assert st.image.shape == (30, 512, 512) and st.classes == ("membrane",)
    assert st.case == "isbi" and st.slice_numbers == tuple(range(30))
    assert st.spacing == (0.004, 0.004) and st.slice_thickness == 0.05
    frac = st.masks.mean()
    assert 0.17 < frac < 0.27  # 78 % interior (255), so ~22 % membrane (0)
    # membranes are dark in TEM
    assert st.image[st.masks[..., 0]].mean() < st.image[~st.masks[..., 0]].mean()


@pytest.mark.real_data
def test_isbi2012_pseudo_cases(isbi_dir):
    parts = read_isbi2012(isbi_dir, n_parts=3)
    assert [p.case for p in parts] == ["isbi_part0", "isbi_part1", "isbi_part2"]
    assert [p.n_slices for p in parts] == [10, 10, 10]
    assert parts[1].slice_numbers == tuple(range(10, 20))
