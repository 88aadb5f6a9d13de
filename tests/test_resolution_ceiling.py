"""``experiments/bench_resolution_ceiling.py``: true masks through the U-Net's grid round trip."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "experiments" / "bench_resolution_ceiling.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("bench_resolution_ceiling", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_native_grid_keeps_the_masks(script):
    masks = np.random.default_rng(0).random((2, 30, 40, 3)) > 0.7
    np.testing.assert_array_equal(script.ceiling_masks(masks, None), masks)


def test_a_large_organ_survives_a_coarse_grid_and_a_thin_one_does_not(script):
    masks = np.zeros((1, 120, 120, 2), dtype=bool)
    masks[0, 30:90, 20:80, 0] = True          # a 60 x 60 organ
    masks[0, 10:110, 61, 1] = True            # a 1-pixel-wide line
    out = script.ceiling_masks(masks, 30)
    assert out.shape == masks.shape and out.dtype == bool
    assert _dice(out[0, ..., 0], masks[0, ..., 0]) > 0.95
    # Nearest-neighbour down by 4 keeps one column in 4 and column 61 is not among them:
    # a network at this grid cannot draw the line, however well trained.
    assert not out[0, ..., 1].any()


def test_a_bad_size_is_named(script, capsys):
    with pytest.raises(SystemExit):
        script.main(["cfg.yaml", "--sizes", "big"])
    assert "--sizes: 'big'" in capsys.readouterr().err
