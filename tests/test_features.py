"""Block featurizers: shapes, dtypes, names, prepared == one-shot, finite values."""

from __future__ import annotations

import numpy as np
import pytest

from gitract.blocks import extract_blocks, grid_centres
from gitract.features import (
    FilterFeaturizer,
    RawBlockFeaturizer,
    find_body,
    make_featurizer,
)


@pytest.fixture
def body_slice() -> np.ndarray:
    """A 96x80 slice: a bright elliptic body with a brighter organ on a dark background."""
    from skimage.draw import ellipse

    gen = np.random.default_rng(2)
    image = gen.normal(0.05, 0.02, size=(96, 80)).astype(np.float32)
    rr, cc = ellipse(50, 40, 40, 32, shape=image.shape)
    image[rr, cc] += 0.4
    rr, cc = ellipse(40, 30, 8, 10, shape=image.shape)
    image[rr, cc] += 0.4
    return np.clip(image, 0, 1)


@pytest.mark.parametrize("kind", ["filters", "raw"])
@pytest.mark.parametrize("block_size", [33, 63])
def test_shapes_names_finite(body_slice, kind, block_size):
    featurizer = make_featurizer(kind, block_size=block_size)
    rows, cols = grid_centres(body_slice.shape, step=8)
    X = featurizer.transform(body_slice, rows, cols)
    names = featurizer.feature_names()
    assert X.shape == (len(rows), len(names)) and X.dtype == np.float32
    assert len(set(names)) == len(names)
    assert np.isfinite(X).all()
    np.testing.assert_array_equal(featurizer.transform_prepared(featurizer.prepare(body_slice), rows, cols), X)


def test_filter_feature_count_default():
    assert len(make_featurizer("filters", block_size=33).feature_names()) == 80


def test_transform_prepared_subsets(body_slice):
    featurizer = FilterFeaturizer(block_size=33)
    state = featurizer.prepare(body_slice)
    rows, cols = grid_centres(body_slice.shape, step=4)
    X = featurizer.transform_prepared(state, rows, cols)
    pick = np.array([0, 7, 100, len(rows) - 1])
    np.testing.assert_array_equal(featurizer.transform_prepared(state, rows[pick], cols[pick]), X[pick])
    assert featurizer.transform_prepared(state, rows[:0], cols[:0]).shape == (0, X.shape[1])


def test_raw_equals_flattened_blocks(body_slice):
    rows, cols = np.array([0, 50, 95]), np.array([0, 40, 79])
    X = RawBlockFeaturizer(block_size=33).transform(body_slice, rows, cols)
    np.testing.assert_array_equal(X, extract_blocks(body_slice, rows, cols, block_size=33).reshape(3, -1))
    sub = RawBlockFeaturizer(block_size=33, pixel_step=4)
    assert sub.transform(body_slice, rows, cols).shape == (3, len(sub.feature_names())) == (3, 81)


def test_filter_features_read_what_they_say(body_slice):
    featurizer = FilterFeaturizer(block_size=33)
    names = featurizer.feature_names()
    rows, cols = np.array([50, 2]), np.array([40, 2])
    X = featurizer.transform(body_slice, rows, cols)
    blocks = extract_blocks(body_slice, rows, cols, block_size=33)
    col = {n: i for i, n in enumerate(names)}
    np.testing.assert_allclose(X[:, col["mean_w33"]], blocks.mean(axis=(1, 2)), atol=1e-4)
    np.testing.assert_allclose(X[:, col["std_w33"]], blocks.std(axis=(1, 2)), atol=1e-3)
    # the centre cell of the context grid is the block itself
    np.testing.assert_allclose(X[:, col["ctx_1_1"]], blocks.mean(axis=(1, 2)), atol=1e-4)
    # the centre of the body is inside it, the corner is not
    assert X[0, col["pos_inside_body"]] == 1 and X[1, col["pos_inside_body"]] == 0
    assert X[0, col["pos_dist_edge"]] > 0 > X[1, col["pos_dist_edge"]]
    assert 0.3 < X[0, col["pos_row_bbox"]] < 0.7


def test_find_body(body_slice):
    body = find_body(body_slice)
    assert body.mask.dtype == bool and body.mask.shape == body_slice.shape
    assert 0.5 < body.mask.mean() < 0.9
    assert body.mask[50, 40] and not body.mask[0, 0]
    flat = find_body(np.zeros((10, 10), np.float32))
    assert flat.mask.all()


@pytest.mark.parametrize(
    "kw,name", [({"kind": "nope"}, "kind"), ({"block_size": 32}, "block_size"), ({"grid": 4}, "grid")]
)
def test_bad_params(kw, name):
    with pytest.raises(ValueError, match=name):
        make_featurizer(**{"kind": "filters", **kw})


def test_bad_state(body_slice):
    with pytest.raises(TypeError, match="state"):
        FilterFeaturizer().transform_prepared(body_slice, np.array([0]), np.array([0]))
