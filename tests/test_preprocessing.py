"""Pure transforms: intensity normalisation, resizing, padding."""

from __future__ import annotations

import numpy as np
import pytest

from gitract.preprocessing import (
    crop_pads,
    normalize_intensity,
    pad_to_multiple,
    resize_to,
)

# --- normalize_intensity -------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 300.0, 60000.0])
def test_normalize_is_scale_free(rng, scale):
    volume = rng.gamma(2.0, 1.0, size=(4, 16, 16)) * scale
    out = normalize_intensity(volume)
    assert out.dtype == np.float32 and out.shape == volume.shape
    assert out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out, normalize_intensity(volume / scale), atol=1e-6)


def test_normalize_clips_outliers(rng):
    volume = rng.normal(1000, 50, size=(32, 32))
    volume[0, 0] = 65535
    out = normalize_intensity(volume, lower=1, upper=99)
    assert out[0, 0] == 1.0
    assert (out == 1.0).mean() < 0.02 and np.median(out) == pytest.approx(0.5, abs=0.05)


def test_normalize_does_not_mutate(rng):
    volume = rng.random((8, 8)).astype(np.float32)
    before = volume.copy()
    normalize_intensity(volume)
    np.testing.assert_array_equal(volume, before)


def test_normalize_mostly_constant_falls_back_to_range():
    volume = np.zeros((20, 20), dtype=np.uint16)
    volume[0, 0] = 500
    out = normalize_intensity(volume)
    assert out[0, 0] == 1.0 and out.sum() == 1.0


@pytest.mark.parametrize(
    ("volume", "kw", "match"),
    [
        (np.full((4, 4), 7.0), {}, "constant"),
        (np.array([1.0, np.nan]), {}, "NaN"),
        (np.array([]), {}, "empty"),
        (np.arange(4.0), {"lower": 50, "upper": 50}, "lower < upper"),
        (np.arange(4.0), {"lower": -1}, "lower < upper"),
    ],
)
def test_normalize_errors(volume, kw, match):
    with pytest.raises(ValueError, match=match):
        normalize_intensity(volume, **kw)


# --- resize_to -----------------------------------------------------------------------


@pytest.mark.parametrize("channels", [None, 1, 3])
@pytest.mark.parametrize("shape", [(8, 12), (40, 30), (20, 24)])
def test_resize_shapes_and_dtype(rng, channels, shape):
    size = (20, 24) if channels is None else (20, 24, channels)
    image = (rng.random(size) * 40000).astype(np.uint16)
    out = resize_to(image, shape)
    assert out.dtype == np.float32
    assert out.shape == (shape if channels is None else (*shape, channels))
    # preserve_range: raw 16-bit values stay on their scale
    assert image.min() - 1 <= out.min() and out.max() <= image.max() + 1
    assert out.max() > 255


def test_resize_identity_shape_is_exact(rng):
    image = rng.random((9, 11)).astype(np.float32)
    np.testing.assert_allclose(resize_to(image, (9, 11)), image, atol=1e-6)


def test_resize_downscale_is_anti_aliased():
    checker = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)
    out = resize_to(checker, (16, 16))
    assert np.ptp(out) < 0.2 and out.mean() == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("size", [(10, 14), (10, 14, 3)])
def test_resize_bool_is_nearest_and_bool(rng, size):
    mask = rng.random(size) < 0.4
    up = resize_to(mask, (20, 28), order=3)
    assert up.dtype == bool and up.shape[:2] == (20, 28)
    np.testing.assert_array_equal(up[::2, ::2], mask)
    np.testing.assert_array_equal(resize_to(up, (10, 14)), mask)


@pytest.mark.parametrize(
    ("image", "shape", "kw", "match"),
    [
        (np.zeros(5), (2, 2), {}, "image must be"),
        (np.zeros((4, 4)), (2,), {}, "shape must be"),
        (np.zeros((4, 4)), (0, 3), {}, "shape must be"),
        (np.zeros((4, 4)), (2, 2), {"order": 7}, "order"),
    ],
)
def test_resize_errors(image, shape, kw, match):
    with pytest.raises(ValueError, match=match):
        resize_to(image, shape, **kw)


# --- pad_to_multiple / crop_pads -----------------------------------------------------


@pytest.mark.parametrize("multiple", [1, 8, 16, 32])
@pytest.mark.parametrize("size", [(266, 266), (310, 360, 3), (33, 17)])
@pytest.mark.parametrize("mode", ["reflect", "constant", "edge"])
def test_pad_round_trip(rng, multiple, size, mode):
    image = rng.random(size).astype(np.float32)
    padded, pads = pad_to_multiple(image, multiple, mode=mode)
    assert padded.dtype == image.dtype
    assert padded.shape[0] % multiple == 0 and padded.shape[1] % multiple == 0
    assert padded.shape[2:] == image.shape[2:]
    assert all(0 <= a <= b <= a + 1 for a, b in pads)  # centred
    assert all(sum(p) < multiple for p in pads)
    np.testing.assert_array_equal(crop_pads(padded, pads), image)


def test_pad_reflect_values():
    padded, pads = pad_to_multiple(np.arange(3.0)[None, :].repeat(4, axis=0), 4)
    assert pads == ((0, 0), (0, 1))
    assert padded[0].tolist() == [0.0, 1.0, 2.0, 1.0]


def test_pad_stack_axes_and_bool(rng):
    stack = rng.random((3, 10, 13)) < 0.5
    padded, pads = pad_to_multiple(stack, 8, axes=(1, 2))
    assert padded.shape == (3, 16, 16) and padded.dtype == bool
    np.testing.assert_array_equal(crop_pads(padded, pads, axes=(1, 2)), stack)


def test_pad_returns_a_copy_when_no_padding_needed():
    image = np.zeros((8, 8))
    padded, pads = pad_to_multiple(image, 4)
    assert pads == ((0, 0), (0, 0)) and padded is not image
    padded[0, 0] = 1
    assert image[0, 0] == 0


@pytest.mark.parametrize("multiple", [0, -2, 2.5, True, "8"])
def test_pad_rejects_bad_multiple(multiple):
    with pytest.raises(ValueError, match="multiple"):
        pad_to_multiple(np.zeros((4, 4)), multiple)


def test_pad_rejects_bad_axes():
    with pytest.raises(ValueError, match="axes"):
        pad_to_multiple(np.zeros((4, 4)), 2, axes=(0, 0))
