"""Context maps (body position and surrounding cell means per centre): the random forest's
``pos_*`` / ``ctx_*`` features as dense maps, and raw pixels + context."""

from __future__ import annotations

import numpy as np
import pytest

from gitract.blocks import grid_centres
from gitract.features import (
    FilterFeaturizer,
    RawBlockFeaturizer,
    context_maps,
    context_names,
    find_body,
    make_featurizer,
    prepare_context,
)
from gitract.features._context import POSITION_NAMES


@pytest.fixture
def body_slice() -> np.ndarray:
    """A 70x58 slice: a bright elliptic body with a brighter organ on a dark background."""
    from skimage.draw import ellipse

    gen = np.random.default_rng(5)
    image = gen.normal(0.05, 0.02, size=(70, 58)).astype(np.float32)
    rr, cc = ellipse(36, 28, 30, 24, shape=image.shape)
    image[rr, cc] += 0.4
    rr, cc = ellipse(30, 22, 6, 8, shape=image.shape)
    image[rr, cc] += 0.4
    return np.clip(image, 0, 1)


def _centres(shape):
    rows, cols = grid_centres(shape, step=7)
    return np.concatenate([rows, [0, shape[0] - 1]]), np.concatenate([cols, [shape[1] - 1, 0]])


@pytest.mark.parametrize("block_size", [9, 33])
@pytest.mark.parametrize("context_grid", [1, 3, 5])
def test_context_maps_agree_with_filter_featurizer(body_slice, block_size, context_grid):
    maps = context_maps(body_slice, block_size, context_grid=context_grid)
    names = context_names(context_grid)
    assert maps.shape == (len(names), *body_slice.shape) and maps.dtype == np.float32
    featurizer = FilterFeaturizer(block_size=block_size, sigmas=(2.0,), context_grid=context_grid)
    rows, cols = _centres(body_slice.shape)
    X = featurizer.transform(body_slice, rows, cols)
    column = {name: k for k, name in enumerate(featurizer.feature_names())}
    body = find_body(body_slice)
    at = maps[:, rows, cols].T
    for k, name in enumerate(names):
        if name in POSITION_NAMES:  # the same definition, the same float32 arithmetic
            np.testing.assert_array_equal(at[:, k], X[:, column[name]], err_msg=name)
        else:  # the featurizer's ctx_i_j cell mean, relative to the body
            want = (X[:, column[name.replace("ctx_rel_", "ctx_")]] - body.mean) / body.std
            np.testing.assert_allclose(at[:, k], want, rtol=1e-5, atol=1e-5, err_msg=name)


def test_context_values_at_centres_equal_the_maps(body_slice):
    planes = prepare_context(body_slice, 9)
    maps = context_maps(body_slice, 9)
    rows, cols = _centres(body_slice.shape)
    np.testing.assert_array_equal(planes.at(rows, cols), maps[:, rows, cols].T)
    np.testing.assert_array_equal(planes.window(5, 7, 20, 11), maps[:, 5:25, 7:18])
    assert planes.at(rows[:0], cols[:0]).shape == (0, planes.n_features)


def test_context_maps_meaning_and_purity(body_slice):
    image = body_slice.copy()
    maps = context_maps(image, 9)
    np.testing.assert_array_equal(image, body_slice)
    name = {n: k for k, n in enumerate(context_names())}
    body = find_body(body_slice).mask
    np.testing.assert_array_equal(maps[name["pos_inside_body"]] == 1, body)
    inside = maps[name["pos_row_bbox"]][body]
    assert inside.min() == 0.0 and inside.max() == 1.0
    assert maps[name["pos_dist_edge"]].max() == pytest.approx(1.0)
    # the centre cell is the block's own mean, so bright organ > body > air outside
    centre = maps[name["ctx_rel_1_1"]]
    assert centre[30, 22] > centre[60, 28] > centre[2, 2]


@pytest.mark.parametrize("bad", [0, 2, -1, 3.0, True])
def test_bad_context_grid_is_named(body_slice, bad):
    with pytest.raises(ValueError, match="context_grid"):
        context_maps(body_slice, 9, context_grid=bad)


def test_window_outside_the_slice_is_refused(body_slice):
    planes = prepare_context(body_slice, 9)
    with pytest.raises(ValueError, match="window"):
        planes.window(60, 0, 20, 5)


def test_raw_featurizer_appends_context(body_slice):
    rows, cols = _centres(body_slice.shape)
    plain = RawBlockFeaturizer(block_size=9)
    featurizer = make_featurizer("raw", block_size=9, context=True)
    X = featurizer.transform(body_slice, rows, cols)
    assert X.shape == (len(rows), 81 + 15) and X.dtype == np.float32
    np.testing.assert_array_equal(X[:, :81], plain.transform(body_slice, rows, cols))
    np.testing.assert_array_equal(X[:, 81:], context_maps(body_slice, 9)[:, rows, cols].T)
    assert featurizer.feature_names() == plain.feature_names() + context_names()
    with pytest.raises(TypeError, match="context=True"):
        featurizer.transform_prepared(plain.prepare(body_slice), rows, cols)
    with pytest.raises(ValueError, match="context must be a bool"):
        RawBlockFeaturizer(context="yes")


def test_context_maps_on_a_real_slice_agree_with_the_forest_features(uwmgi_dir):
    # A real 512 px UW-Madison slice: the body outline, the position values and the
    # cell means the CNN gets are the ones rf-33's features read at the same centres.
    from gitract.data.index import index_dataset
    from gitract.tracks import normalize_stack

    index = index_dataset("uwmgi_derived", str(uwmgi_dir))
    stack = index.read(index.keys()[0])
    image = normalize_stack(stack)[0]
    maps = context_maps(image, 33)
    featurizer = FilterFeaturizer(block_size=33, sigmas=(2.0,))
    rows, cols = grid_centres(image.shape, step=37)
    X = featurizer.transform(image, rows, cols)
    column = {name: k for k, name in enumerate(featurizer.feature_names())}
    body = find_body(image)
    assert 0.1 < body.mask.mean() < 0.9  # a body was found, not the whole frame
    at = maps[:, rows, cols].T
    for k, name in enumerate(context_names(3)):
        if name in POSITION_NAMES:
            np.testing.assert_array_equal(at[:, k], X[:, column[name]], err_msg=name)
        else:
            want = (X[:, column[name.replace("ctx_rel_", "ctx_")]] - body.mean) / body.std
            np.testing.assert_allclose(at[:, k], want, rtol=1e-4, atol=1e-4, err_msg=name)
