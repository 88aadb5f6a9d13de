import numpy as np
import pytest

from gitract.data import DataError, rle_decode, rle_encode


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (64, 48)])
def test_round_trip_random(rng, order, shape):
    for density in (0.0, 0.1, 0.5, 1.0):
        mask = rng.random(shape) < density
        assert np.array_equal(rle_decode(rle_encode(mask, order=order), shape, order=order), mask)


def test_row_major_is_default():
    mask = np.zeros((3, 4), dtype=bool)
    mask[0, 1] = True  # pixel 2 in row-major, pixel 4 in column-major
    assert rle_encode(mask) == "2 1"
    assert rle_encode(mask, order="F") == "4 1"


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ("1 2 3", "odd number"),
        ("a 2", "non-integer"),
        ("0 2", "start below 1"),
        ("1 0", "non-positive"),
        ("10 5", "out of bounds"),
        ("5 3 6 1", "overlap"),
    ],
)
def test_bad_rle_names_row(rle, message):
    with pytest.raises(DataError, match=message) as err:
        rle_decode(rle, (3, 4), where="case1_day1_slice_0001 stomach")
    assert "case1_day1_slice_0001 stomach" in str(err.value)


def test_empty_values_decode_to_empty():
    for value in ("", None, float("nan")):
        assert not rle_decode(value, (4, 4)).any()
