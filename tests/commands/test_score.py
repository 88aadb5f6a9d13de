"""``gitract score`` on a tiny Kaggle-layout dataset written by the test itself."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gitract.cli import main
from gitract.data.rle import rle_encode

pytest.importorskip("gitract.data.kaggle", reason="gitract.data.kaggle is not written yet")

CLASSES = ("large_bowel", "small_bowel", "stomach")
H, W = 6, 8  # not square, to catch a swapped width/height
STACKS = {("case1", "day1"): 3, ("case7", "day20"): 2}


def _write_dataset(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Kaggle layout: train/caseN/caseN_dayM/scans/slice_SSSS_W_H_1.50_1.50.png + train.csv."""
    from PIL import Image

    gen = np.random.default_rng(seed)
    rows, masks = [], {}
    for (case, day), n in STACKS.items():
        scans = root / "train" / case / f"{case}_{day}" / "scans"
        scans.mkdir(parents=True)
        m = gen.random((n, H, W, len(CLASSES))) < 0.25
        m[:, :, :, 2] = False  # stomach absent everywhere: excluded by default
        m[0, :, :, 1] = False  # an empty (slice, class) row
        m[0, 2, 3, 0] = True
        masks[f"{case}_{day}"] = m
        for s in range(n):
            image = gen.integers(0, 40000, size=(H, W)).astype(np.uint16)
            Image.fromarray(image).save(scans / f"slice_{s + 1:04d}_{W}_{H}_1.50_1.50.png")
            slice_id = f"{case}_{day}_slice_{s + 1:04d}"
            for c, cls in enumerate(CLASSES):
                rows.append((slice_id, cls, rle_encode(m[s, :, :, c])))
    pd.DataFrame(rows, columns=["id", "class", "segmentation"]).to_csv(
        root / "train.csv", index=False
    )
    return masks


def _write_submission(path: Path, masks: dict[str, np.ndarray], drop=(), extra=()) -> Path:
    rows = []
    for key, m in masks.items():
        for s in range(m.shape[0]):
            slice_id = f"{key}_slice_{s + 1:04d}"
            for c, cls in enumerate(CLASSES):
                if (slice_id, cls) not in drop:
                    rows.append((slice_id, cls, rle_encode(m[s, :, :, c])))
    rows.extend(extra)
    pd.DataFrame(rows, columns=["id", "class", "predicted"]).to_csv(path, index=False)
    return path


def _json_line(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def _brute(truth: dict, pred: dict) -> tuple[float, float]:
    """Independent reference: python-loop Dice over rows, all-pairs Hausdorff over volumes."""
    d_rows, h_rows = [], []
    for key, t in truth.items():
        p = pred[key]
        for c in range(len(CLASSES)):
            for s in range(t.shape[0]):
                tp = n_p = n_t = 0
                for a, b in zip(p[s, ..., c].ravel().tolist(), t[s, ..., c].ravel().tolist(),
                                strict=True):
                    tp, n_p, n_t = tp + (a and b), n_p + a, n_t + b
                if n_p + n_t:
                    d_rows.append(2 * tp / (n_p + n_t))
            pv, tv = p[..., c], t[..., c]
            if pv.any() and tv.any():
                shape = np.array(pv.shape, float)
                x, y = np.argwhere(pv) / shape, np.argwhere(tv) / shape
                d = np.sqrt(((x[:, None] - y[None]) ** 2).sum(-1))
                h_rows.append(max(d.min(0).max(), d.min(1).max()) / math.sqrt(3))
            elif pv.any() or tv.any():
                h_rows.append(1.0)
    return float(np.mean(d_rows)), float(np.mean(h_rows))


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    return root, _write_dataset(root)


def test_truth_against_itself_is_perfect(dataset, tmp_path, capsys):
    root, masks = dataset
    sub = _write_submission(tmp_path / "sub.csv", masks)
    assert main(["score", "--data-dir", str(root), "--pred", str(sub), "--json"]) == 0
    out = capsys.readouterr().out
    summary = _json_line(out)
    assert summary["dice"] == 1.0
    assert summary["hausdorff"] == 0.0
    assert summary["score"] == 1.0
    for cls in ("large_bowel", "small_bowel"):
        stats = summary["per_class"][cls]
        assert (stats["dice"], stats["hausdorff"], stats["score"]) == (1.0, 0.0, 1.0)
    assert summary["per_class"]["stomach"]["dice"] is None  # excluded: empty everywhere
    assert "overall" in out and "small_bowel" in out


def test_perturbed_submission_matches_independent_value(dataset, tmp_path, capsys):
    root, masks = dataset
    gen = np.random.default_rng(5)
    pred = {}
    for key, m in masks.items():
        p = m.copy()
        flip = gen.random(p.shape) < 0.1
        p[..., :2] ^= flip[..., :2]
        pred[key] = p
    pred["case1_day1"][1, 0, 0, 2] = True  # a false positive stomach pixel: HD 1 there
    sub = _write_submission(tmp_path / "sub.csv", pred)
    assert main(["score", "--data-dir", str(root), "--pred", str(sub), "--json"]) == 0
    summary = _json_line(capsys.readouterr().out)
    dm, hm = _brute(masks, pred)
    assert summary["dice"] == pytest.approx(dm, abs=1e-12)
    assert summary["hausdorff"] == pytest.approx(hm, abs=1e-12)
    assert summary["score"] == pytest.approx(0.4 * dm + 0.6 * (1 - hm), abs=1e-12)


def test_conventions_are_options(dataset, tmp_path, capsys):
    root, masks = dataset
    sub = _write_submission(tmp_path / "sub.csv", masks)
    argv = ["score", "--data-dir", str(root), "--pred", str(sub), "--json",
            "--dice-both-empty", "0", "--hausdorff-both-empty", "1"]
    assert main(argv) == 0
    summary = _json_line(capsys.readouterr().out)
    stomach = summary["per_class"]["stomach"]
    assert (stomach["dice"], stomach["hausdorff"], stomach["score"]) == (0.0, 1.0, 0.0)
    assert summary["dice"] < 1.0


def test_missing_row_is_an_error_naming_the_id(dataset, tmp_path, capsys):
    root, masks = dataset
    sub = _write_submission(tmp_path / "sub.csv", masks,
                            drop={("case7_day20_slice_0002", "small_bowel")})
    assert main(["score", "--data-dir", str(root), "--pred", str(sub)]) == 2
    err = capsys.readouterr().err
    assert "case7_day20_slice_0002" in err and "small_bowel" in err


def test_a_misnamed_prediction_column_names_predicted(dataset, tmp_path, capsys):
    root, masks = dataset
    sub = _write_submission(tmp_path / "sub.csv", masks)
    frame = pd.read_csv(sub).rename(columns={"predicted": "pred"})
    frame.to_csv(sub, index=False)
    assert main(["score", "--data-dir", str(root), "--pred", str(sub)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(sub) in err[0]
    assert "missing column(s) ['predicted']" in err[0] and "'pred'" in err[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([("case9_day1_slice_0001", "stomach", "")], "case9_day1_slice_0001"),
        ([("case1_day1_slice_0001", "liver", "")], "unknown class"),
        ([("case1_day1_slice_0001", "stomach", "1 2")], "twice"),
        ([], None),
    ],
)
def test_bad_rows_are_errors(dataset, tmp_path, capsys, extra, message):
    root, masks = dataset
    sub = _write_submission(tmp_path / "sub.csv", masks, extra=extra)
    rc = main(["score", "--data-dir", str(root), "--pred", str(sub)])
    if message is None:
        assert rc == 0
    else:
        assert rc == 2
        assert message in capsys.readouterr().err


def test_bad_rle_names_the_row(dataset, tmp_path, capsys):
    root, masks = dataset
    sub = _write_submission(tmp_path / "sub.csv", masks)
    frame = pd.read_csv(sub, dtype=str, keep_default_na=False)
    frame.loc[4, "predicted"] = f"1 {H * W + 1}"
    frame.to_csv(sub, index=False)
    assert main(["score", "--data-dir", str(root), "--pred", str(sub)]) == 2
    err = capsys.readouterr().err
    assert frame.loc[4, "id"] in err and "out of bounds" in err


def test_phantom_scored_against_itself(tmp_path, capsys):
    phantom = pytest.importorskip("gitract.data.phantom")
    if not hasattr(phantom, "write_phantom"):
        pytest.skip("gitract.data.phantom has no write_phantom yet")

    config = phantom.PhantomConfig(n_cases=1, n_days=1, n_slices=6)
    root = Path(phantom.write_phantom(tmp_path / "phantom", config))
    frame = pd.read_csv(root / "train.csv", dtype=str, keep_default_na=False)
    frame = frame.rename(columns={"segmentation": "predicted"})
    frame.to_csv(tmp_path / "sub.csv", index=False)
    argv = ["score", "--data-dir", str(root), "--pred", str(tmp_path / "sub.csv"), "--json"]
    assert main(argv) == 0
    summary = _json_line(capsys.readouterr().out)
    assert (summary["dice"], summary["hausdorff"], summary["score"]) == (1.0, 0.0, 1.0)
