"""``experiments/bench_resolution_ceiling.py``: true masks through the U-Net's grid round trip."""

import importlib.util
import json
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


def test_real_slices_keep_everything_at_native_size_and_lose_some_on_a_coarse_grid(
        script, uwmgi_dir, tmp_path, capsys):
    cfg = tmp_path / "real.yaml"
    cfg.write_text(f"name: real-ceiling\nseed: 0\ndata: {{kind: uwmgi_derived, path: {uwmgi_dir}}}\n"
                   "split: {n_folds: 4, cross_validate: true}\n"
                   "tracks: [{name: rf, kind: blocks, params: {classifier: rf}}]\n")
    out = tmp_path / "ceiling"
    assert script.main([str(cfg), "--sizes", "64", "native", "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["n_slices"] == 24  # every real slice is tested once across the folds
    native, coarse = payload["sizes"]["native"], payload["sizes"]["64"]
    assert native["dice"] == pytest.approx(1.0) and native["hausdorff"] == pytest.approx(0.0)
    assert 0.5 < coarse["dice"] < native["dice"]
    assert json.loads(out.with_suffix(".json").read_text()) == payload
    assert "| 64 |" in out.with_suffix(".md").read_text()
