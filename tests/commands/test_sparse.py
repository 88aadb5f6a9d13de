"""Sparse stacks (slices missing) through ``validate``, ``score`` and ``predict``:
one ``error:`` line without ``--allow-gaps``; with it, warnings and the slices present."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import directed_hausdorff

from gitract.cli import main
from gitract.data.phantom import PhantomConfig, write_phantom
from gitract.data.rle import rle_decode, rle_encode

CLASSES = ("large_bowel", "small_bowel", "stomach")
N_SLICES = 8
DROP = (3, 4, 6)  # case1's scan keeps slices 1, 2, 5, 7, 8
TINY = ["--block-size", "9", "--step", "8", "--n-per-class", "20", "--background-cap", "40",
        "--param", "n_estimators=5", "--param", "n_jobs=1"]


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("phantom") / "ph"
    return Path(write_phantom(out, PhantomConfig(n_cases=3, n_days=1, n_slices=N_SLICES,
                                                 sizes=((72, 64),))))


def _key(root: Path) -> str:
    """The scan of case1 (the phantom draws its day number)."""
    (folder,) = (root / "train" / "case1").iterdir()
    return folder.name


@pytest.fixture
def sparse_dir(phantom_dir, tmp_path) -> Path:
    """A copy of the phantom with some slice PNGs of case1 and their train.csv rows
    removed."""
    root = Path(shutil.copytree(phantom_dir, tmp_path / "sparse"))
    key, dropped = _key(root), set()
    for n in DROP:
        (path,) = (root / "train" / "case1" / key / "scans").glob(f"slice_{n:04d}_*.png")
        path.unlink()
        dropped.add(f"{key}_slice_{n:04d}")
    frame = pd.read_csv(root / "train.csv", dtype=str, keep_default_na=False)
    frame[~frame["id"].isin(dropped)].to_csv(root / "train.csv", index=False)
    return root


def _one_error(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])


def _warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("warning:")]


# ----------------------------------------------------------------------- validate
def test_validate_sparse(sparse_dir, capsys):
    key = _key(sparse_dir)
    assert main(["validate", str(sparse_dir)]) == 2
    out = capsys.readouterr().out
    assert f"{key}/scans: gap in the slice stack: missing slice(s) 3, 4, 6" in out
    assert main(["validate", str(sparse_dir), "--allow-gaps"]) == 0
    out = capsys.readouterr().out
    (warning,) = _warnings(out)
    assert key in warning and "3 slice(s) missing, 5 present" in warning
    assert "problems: 0" in out and f"slices: {3 * N_SLICES - 3}" in out


# ----------------------------------------------------------------------- score
def _truth(root: Path) -> dict[str, tuple[list[int], np.ndarray]]:
    """``key -> (slice numbers present, masks (S, H, W, C))`` decoded from train.csv."""
    frame = pd.read_csv(root / "train.csv", dtype=str, keep_default_na=False)
    shapes = {p.parent.parent.name: tuple(int(v) for v in p.name.split("_")[2:4])[::-1]
              for p in (root / "train").glob("*/*/scans/*.png")}
    out = {}
    for key, shape in sorted(shapes.items()):
        ids = sorted(set(frame.loc[frame["id"].str.startswith(key + "_"), "id"]))
        masks = np.zeros((len(ids), *shape, len(CLASSES)), bool)
        for s, sid in enumerate(ids):
            for c, cls in enumerate(CLASSES):
                (rle,) = frame.loc[(frame["id"] == sid) & (frame["class"] == cls), "segmentation"]
                masks[s, :, :, c] = rle_decode(rle, shape)
        out[key] = ([int(sid.rsplit("_", 1)[1]) for sid in ids], masks)
    return out


def _hausdorff(p, t, z) -> float:
    """Normalised Hausdorff with slice coordinates ``z`` (span of z + 1 normalises)."""
    if not p.any() and not t.any():
        return math.nan
    if not p.any() or not t.any():
        return 1.0
    z = np.asarray(z, float)
    scale = np.array([z.max() - z.min() + 1, *p.shape[1:]], float)

    def coords(m):
        idx = np.argwhere(m).astype(float)
        idx[:, 0] = z[idx[:, 0].astype(int)] - z.min()
        return idx / scale

    a, b = coords(p), coords(t)
    return max(directed_hausdorff(a, b)[0], directed_hausdorff(b, a)[0]) / math.sqrt(3)


def _reference(truth, pred, *, positions=False) -> tuple[float, float]:
    dice, hd = [], []
    for key, (numbers, t) in truth.items():
        p = pred[key]
        z = range(len(numbers)) if positions else numbers
        for s in range(t.shape[0]):
            for c in range(len(CLASSES)):
                total = p[s, ..., c].sum() + t[s, ..., c].sum()
                if total:
                    dice.append(2 * (p[s, ..., c] & t[s, ..., c]).sum() / total)
        hd += [_hausdorff(p[..., c], t[..., c], z) for c in range(len(CLASSES))]
    return float(np.mean(dice)), float(np.nanmean(hd))


def _submission(path: Path, truth, pred) -> Path:
    rows = [(f"{key}_slice_{n:04d}", cls, rle_encode(pred[key][s, :, :, c]))
            for key, (numbers, _) in truth.items() for s, n in enumerate(numbers)
            for c, cls in enumerate(CLASSES)]
    pd.DataFrame(rows, columns=["id", "class", "predicted"]).to_csv(path, index=False)
    return path


def test_score_sparse(sparse_dir, tmp_path, capsys):
    truth = _truth(sparse_dir)
    key, other = _key(sparse_dir), sorted(truth)[1]
    assert truth[key][0] == [1, 2, 5, 7, 8] and other != key
    pred = {k: m.copy() for k, (_, m) in truth.items()}
    p = pred[key]
    organ = np.argwhere(p[..., 0].any(axis=(1, 2)))[:, 0]
    p[organ[0], ..., 0] = False  # a slice of large bowel missed
    p[-1, 0, 0, 0] = True  # a false positive on slice 8, three numbers (one position) away
    pred[other][..., 1] = np.roll(pred[other][..., 1], 2, axis=2)
    sub = _submission(tmp_path / "sub.csv", truth, pred)
    argv = ["score", "--data-dir", str(sparse_dir), "--pred", str(sub), "--json"]

    assert main(argv) == 2
    _one_error(capsys.readouterr().err, key, "gap in the slice stack", "--allow-gaps")

    assert main([*argv, "--allow-gaps"]) == 0
    captured = capsys.readouterr()
    (warning,) = _warnings(captured.err)
    assert key in warning and "3 slice(s) missing" in warning
    assert "sparse stacks: 1 of 3 case-days" in captured.out
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["n_sparse_stacks"] == 1
    dice, hd = _reference(truth, pred)
    assert summary["dice"] == pytest.approx(dice, abs=1e-12)
    assert summary["hausdorff"] == pytest.approx(hd, abs=1e-12)
    assert summary["score"] == pytest.approx(0.4 * dice + 0.6 * (1 - hd), abs=1e-12)
    # Slice numbers, not array positions, place the slices in z.
    assert summary["hausdorff"] != pytest.approx(_reference(truth, pred, positions=True)[1])


# ----------------------------------------------------------------------- predict
@pytest.fixture(scope="module")
def trained(phantom_dir, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "rf"
    assert main(["blocks", "train", "--data", "kaggle", "--path", str(phantom_dir), *TINY,
                 "--out", str(run)]) == 0
    return run


def test_predict_sparse(trained, sparse_dir, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    argv = ["predict", str(trained), "--data-dir", str(sparse_dir), "--images-subdir", "train",
            "--out", str(out)]
    capsys.readouterr()
    assert main(argv) == 2
    _one_error(capsys.readouterr().err, _key(sparse_dir), "gap in the slice stack")
    assert not out.exists()

    assert main([*argv, "--allow-gaps"]) == 0
    captured = capsys.readouterr()
    (warning,) = _warnings(captured.err)
    assert _key(sparse_dir) in warning and "3 slice(s) missing" in warning
    assert "1 sparse stack(s)" in captured.out
    frame = pd.read_csv(out, keep_default_na=False)
    present = sorted(set(pd.read_csv(sparse_dir / "train.csv")["id"]))
    assert len(present) == 3 * N_SLICES - 3
    assert len(frame) == len(present) * len(CLASSES)
    assert sorted(set(frame["id"])) == present
    assert all(tuple(v) == CLASSES for v in frame.groupby("id")["class"].apply(sorted))


def test_sparse_index_keeps_slice_numbers_for_25d_context(sparse_dir):
    from gitract.data.index import index_dataset
    from gitract.data.record import DataError
    from gitract.models._unet_data import neighbour_indices

    with pytest.raises(DataError, match="gap in the slice stack"):
        index_dataset("kaggle", sparse_dir)
    index = index_dataset("kaggle", sparse_dir, allow_gaps=True)
    stack = index.read(_key(sparse_dir))
    numbers = [1, 2, 5, 7, 8]
    assert stack.slice_numbers == tuple(numbers) and stack.n_slices == 5
    # The U-Net's channel for offset o is the present slice nearest to n + o (ties: the
    # one nearer n), found here by a plain search.
    offsets = (-2, 0, 2)
    expected = [[min(range(5), key=lambda j, n=n, o=o: (abs(numbers[j] - n - o),
                                                          abs(numbers[j] - n)))
                 for o in offsets] for n in numbers]
    assert neighbour_indices(stack.slice_numbers, offsets=offsets).tolist() == expected
    assert expected[2] == [1, 2, 3]  # slice 5: context from slices 2 and 7
