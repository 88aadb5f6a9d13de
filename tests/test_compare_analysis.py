import numpy as np
import pytest

from gitract.compare import _analysis as A
from gitract.data.record import SliceStack

CLASSES = ("large_bowel", "small_bowel", "stomach")


def _stack(masks):
    s = masks.shape[0]
    return SliceStack(image=np.ones(masks.shape[:3], np.float32), masks=masks, classes=CLASSES,
                      spacing=(2.0, 1.0), ids=[f"case1_day1_slice_{i:04d}" for i in range(s)],
                      case="case1", day="day1")


def test_empty_slice_behaviour_counts_false_positives():
    truth = np.zeros((3, 4, 4, 3), bool)
    truth[0, 1, 1, 0] = True  # slice 0 has large bowel; slices 1, 2 are organ-free
    pred = np.zeros_like(truth)
    pred[1, 0, 0, 2] = True  # a stomach false positive on slice 1
    table = A.empty_slice_behaviour([_stack(truth)], {"case1_day1": pred}).set_index("class")
    assert table.loc["stomach", "n_empty_slices"] == 3
    assert table.loc["stomach", "n_false_positive"] == 1
    assert table.loc["any", "n_empty_slices"] == 2
    assert table.loc["any", "fp_rate"] == pytest.approx(0.5)
    assert table.loc["large_bowel", "n_empty_slices"] == 2


def test_empty_slice_behaviour_without_empty_slices():
    truth = np.ones((2, 4, 4, 3), bool)
    table = A.empty_slice_behaviour([_stack(truth)], {"case1_day1": truth})
    assert (table["n_empty_slices"] == 0).all()
    assert np.isnan(A.empty_fp_rate(table))


def test_localisation_and_confusion():
    truth = np.zeros((1, 8, 8, 3), bool)
    truth[0, 0, 0, 2] = True
    pred = np.zeros_like(truth)
    pred[0, 3, 0, 2] = True
    loc = A.localisation_errors([_stack(truth)], {"case1_day1": pred})
    assert loc["distance_mm"].tolist() == [6.0]  # 3 rows x 2 mm
    cm = A.block_confusion([_stack(truth)], {"case1_day1": truth}, step=1)
    assert cm["count"].sum() == 64
    off = cm[cm["true"] != cm["predicted"]]["count"].sum()
    assert off == 0
