"""Probability maps: centres land on their pixels, edges stay where they are."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from gitract.blocks import block_grid
from gitract.probmaps import (
    centres_to_map,
    class_columns,
    organ_proba,
    predict_proba_map,
)

CLASSES3 = ("large_bowel", "small_bowel", "stomach")


class _PixelFeaturizer:
    """Features = one plane of ``prepare(image)`` read at the centre (plus the centre)."""

    def __init__(self, block_size: int | None = None):
        self.block_size = block_size

    def prepare(self, image):
        if self.block_size is None:
            return image
        # Fraction of the block that is bright: what a perfect "block" classifier that
        # reports the organ share of its block would output.
        return ndi.uniform_filter(image.astype(np.float64), self.block_size, mode="mirror")

    def transform_prepared(self, state, rows, cols):
        return np.stack([state[rows, cols], rows, cols], axis=1)


class _FakeModel:
    """Class ``label`` with probability X[:, 0], background with the rest."""

    def __init__(self, label: int = 2, classes=(0, 1, 2, 3)):
        self.label = label
        self.classes_ = np.array(classes)
        self.calls: list[np.ndarray] = []

    def predict_proba(self, X):
        self.calls.append(X)
        out = np.zeros((len(X), len(self.classes_)))
        j = list(self.classes_).index(self.label)
        out[:, j] = X[:, 0]
        out[:, 0] += 1.0 - X[:, 0]
        return out


def _edge_image(edge: int, *, shape=(24, 200)) -> np.ndarray:
    """Columns < edge are the organ (1.0), the rest background (0.0)."""
    image = np.zeros(shape, np.float32)
    image[:, :edge] = 1.0
    return image


def _crossing(profile: np.ndarray) -> float:
    """Sub-pixel column where a decreasing profile crosses 0.5 (linear between pixels)."""
    below = np.flatnonzero(profile < 0.5)[0]
    a, b = profile[below - 1], profile[below]
    return below - 1 + (a - 0.5) / (a - b)


@pytest.mark.parametrize("block_size", [33, 63])
@pytest.mark.parametrize("step", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("edge", [97, 102, 107])
def test_edge_crossing_within_one_pixel(block_size, step, edge):
    # The organ's border lies between pixels edge - 1 and edge, i.e. at edge - 0.5. A
    # block probability that varies smoothly across it (the organ share of the block)
    # must cross 0.5 there at every stride: a half-block shift would move it by 16+ px.
    image = _edge_image(edge)
    proba = predict_proba_map(
        _FakeModel(), image, featurizer=_PixelFeaturizer(block_size), step=step
    )
    crossing = _crossing(proba[12, :, 1].astype(np.float64))
    assert abs(crossing - (edge - 0.5)) <= 1.0


@pytest.mark.parametrize("step", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("edge", [97, 102, 107])
def test_edge_with_centre_label_oracle(step, edge):
    # A model that outputs the true label of the centre pixel: the crossing is midway
    # between the last organ centre and the first background centre, so it lies within
    # step / 2 of the border (within one pixel up to step 2) and is never biased to one
    # side the way a corner-anchored (shifted) map is.
    image = _edge_image(edge)
    proba = predict_proba_map(_FakeModel(), image, featurizer=_PixelFeaturizer(), step=step)
    profile = proba[5, :, 1].astype(np.float64)
    crossing = _crossing(profile)
    assert abs(crossing - (edge - 0.5)) <= max(step / 2, 1.0)
    cols = block_grid(image.shape, step=step)[1]
    last_in = cols[cols < edge].max()
    first_out = cols[cols >= edge].min()
    assert crossing == pytest.approx((last_in + first_out) / 2)


@pytest.mark.parametrize("interpolation", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("step", [1, 3, 8])
def test_values_at_centres_equal_block_predictions(interpolation, step, rng):
    image = rng.random((37, 29)).astype(np.float32)
    model = _FakeModel(label=3)
    proba = predict_proba_map(
        model, image, featurizer=_PixelFeaturizer(), step=step, interpolation=interpolation
    )
    rows, cols = block_grid(image.shape, step=step)
    expected = image[np.ix_(rows, cols)]
    got = proba[np.ix_(rows, cols)][..., 2]
    if interpolation == "cubic":
        np.testing.assert_allclose(got, expected, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(proba[..., :2], 0.0)


@pytest.mark.parametrize("shape", [(1, 1), (5, 9), (33, 20)])
@pytest.mark.parametrize("step", [1, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_shape_dtype_contract(shape, step, dtype):
    image = np.zeros(shape, dtype)
    proba = predict_proba_map(_FakeModel(), image, featurizer=_PixelFeaturizer(), step=step)
    assert proba.shape == (*shape, 3)
    assert proba.dtype == np.float32


def test_model_without_a_class_gives_zero_channel():
    model = _FakeModel(label=1, classes=(0, 1))  # never saw small bowel or stomach
    proba = predict_proba_map(model, np.ones((6, 6), np.float32), featurizer=_PixelFeaturizer())
    np.testing.assert_array_equal(proba[..., 0], 1.0)
    np.testing.assert_array_equal(proba[..., 1:], 0.0)


def test_class_columns_by_int_and_name():
    assert class_columns(np.array([0, 1, 2, 3]), CLASSES3) == [1, 2, 3]
    assert class_columns(["background", "stomach"], CLASSES3) == [None, None, 1]
    proba = np.array([[0.1, 0.2, 0.7]])
    model = _FakeModel(classes=(0, 3, 1))
    np.testing.assert_allclose(organ_proba(proba, model, CLASSES3), [[0.7, 0.0, 0.2]])


class _DenseModel:
    classes_ = np.array([0, 1, 2, 3])

    def __init__(self):
        self.dense_calls = 0

    def predict_proba_dense(self, image):
        self.dense_calls += 1
        h, w = image.shape
        out = np.zeros((h, w, 4), np.float32)
        out[..., 3] = image
        out[..., 0] = 1 - image
        return out

    def predict_proba(self, X):  # pragma: no cover - must not be called
        raise AssertionError("block-wise path used although a dense pass exists")


@pytest.mark.parametrize("step", [1, 4])
def test_dense_model_is_used(step, rng):
    image = rng.random((17, 13)).astype(np.float32)
    model = _DenseModel()
    proba = predict_proba_map(model, image, step=step)
    assert model.dense_calls == 1
    if step == 1:
        np.testing.assert_array_equal(proba[..., 2], image)
    rows, cols = block_grid(image.shape, step=step)
    np.testing.assert_array_equal(proba[np.ix_(rows, cols)][..., 2], image[np.ix_(rows, cols)])


def test_centres_to_map_linear_between_uneven_centres():
    # block_grid's last gap may be shorter than the step: interpolation uses true positions.
    values = np.array([[[0.0], [1.0], [0.0]]])
    out = centres_to_map(values, np.array([0]), np.array([0, 4, 6]), (3, 7))
    np.testing.assert_allclose(out[1, :, 0], [0, 0.25, 0.5, 0.75, 1.0, 0.5, 0.0])
    assert out.shape == (3, 7, 1) and out.dtype == np.float32


def test_centres_to_map_nearest_and_cubic_clip():
    values = np.array([[[0.0], [1.0], [1.0], [0.0]]])
    cols = np.array([0, 3, 6, 9])
    near = centres_to_map(values, np.array([0]), cols, (1, 10), interpolation="nearest")
    assert near[0, :, 0].tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 0, 0]
    cubic = centres_to_map(values, np.array([0]), cols, (1, 10), interpolation="cubic")
    assert cubic.min() >= 0.0 and cubic.max() <= 1.0


def test_centres_to_map_fills_outside_span_with_border_value():
    values = np.array([[[2.0], [4.0]]])
    out = centres_to_map(values, np.array([1]), np.array([2, 4]), (3, 6))
    np.testing.assert_allclose(out[0, :, 0], [2, 2, 2, 3, 4, 4])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interpolation": "spline"}, "interpolation"),
        ({"rows": np.array([0, 0])}, "rows"),
        ({"cols": np.array([0, 9])}, "cols"),
        ({"values": np.zeros((1, 2))}, "values"),
        ({"values": np.zeros((2, 2, 1))}, "values shape"),
    ],
)
def test_centres_to_map_errors(kwargs, match):
    args = {"values": np.zeros((1, 2, 1)), "rows": np.array([0]), "cols": np.array([0, 3])}
    args.update(kwargs)
    interpolation = args.pop("interpolation", "linear")
    with pytest.raises(ValueError, match=match):
        centres_to_map(args["values"], args["rows"], args["cols"], (4, 4), interpolation=interpolation)


def test_predict_proba_map_errors():
    with pytest.raises(ValueError, match="featurizer or a block_size"):
        predict_proba_map(_FakeModel(), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="image"):
        predict_proba_map(_FakeModel(), np.zeros((4, 4, 1)), featurizer=_PixelFeaturizer())
    with pytest.raises(ValueError, match="step"):
        predict_proba_map(_FakeModel(), np.zeros((4, 4)), featurizer=_PixelFeaturizer(), step=0)
    with pytest.raises(ValueError, match="predict_proba_dense"):
        predict_proba_map(_FakeModel(), np.zeros((4, 4)), featurizer=_PixelFeaturizer(), use_dense=True)


def test_default_raw_featurizer_with_block_size():
    class _Mean:
        classes_ = np.array([0, 1])

        def predict_proba(self, X):
            m = X.mean(axis=1)
            return np.stack([1 - m, m], axis=1)

    image = np.ones((9, 9), np.float32)
    proba = predict_proba_map(_Mean(), image, block_size=3, step=2)
    np.testing.assert_allclose(proba[..., 0], 1.0)
