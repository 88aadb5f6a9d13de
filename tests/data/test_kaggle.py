"""Kaggle layout: tiny 16-bit PNG datasets written by the tests themselves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gitract.data.kaggle import (
    gap_warning,
    kaggle_png_name,
    read_kaggle_dataset,
    read_kaggle_png,
    scan_kaggle_images,
    stacks_to_rle_frame,
    validate_kaggle_dataset,
    write_kaggle_png,
    write_submission,
    write_train_csv,
)
from gitract.data.record import DataError
from gitract.data.rle import rle_decode, rle_encode

CLASSES = ("large_bowel", "small_bowel", "stomach")
H, W = 6, 8  # not square, to catch a swapped width/height
SPACING = (1.5, 1.63)  # (row, col): the name holds pixel width (col) first
STACKS = {("case7", "day20"): 3, ("case10", "day1"): 2, ("case7", "day3"): 2}


def write_dataset(
    root: Path, *, stacks=STACKS, order: str = "C", seed: int = 0, first_slice: int = 1
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write ``train.csv`` + ``train/...`` PNGs under root; key -> (images, masks)."""
    gen = np.random.default_rng(seed)
    rows, truth = [], {}
    for (case, day), n in stacks.items():
        scans = root / "train" / case / f"{case}_{day}" / "scans"
        images = gen.integers(0, 60000, size=(n, H, W)).astype(np.uint16)
        images[:, 0, 0] = 65535  # values far above 8 bits must survive
        masks = gen.random((n, H, W, len(CLASSES))) < 0.3
        masks[0, :, :, 2] = False  # an empty (slice, class) row
        masks[:, 1, 1, :] = True  # overlapping classes on one pixel
        truth[f"{case}_{day}"] = (images, masks)
        for s in range(n):
            number = first_slice + s
            write_kaggle_png(
                scans / kaggle_png_name(number, (H, W), SPACING), images[s]
            )
            for c, cls in enumerate(CLASSES):
                rows.append(
                    (
                        f"{case}_{day}_slice_{number:04d}",
                        cls,
                        rle_encode(masks[s, :, :, c], order=order),
                    )
                )
    write_train_csv(
        pd.DataFrame(rows, columns=["id", "class", "segmentation"]), root / "train.csv"
    )
    return truth


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    return root, write_dataset(root)


def _scans(root: Path, key: str = "case7_day20") -> Path:
    case = key.split("_")[0]
    return root / "train" / case / key / "scans"


def _csv(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "train.csv", dtype=str, keep_default_na=False)


# --- reading -------------------------------------------------------------------------


def test_round_trip_images_and_masks(dataset):
    root, truth = dataset
    stacks = read_kaggle_dataset(root)
    assert [s.key for s in stacks] == ["case7_day3", "case7_day20", "case10_day1"]
    for stack in stacks:
        images, masks = truth[stack.key]
        assert stack.image.dtype == np.float32 and stack.image.shape == (
            len(images),
            H,
            W,
        )
        np.testing.assert_array_equal(stack.image, images.astype(np.float32))
        assert stack.image.max() == 65535
        np.testing.assert_array_equal(stack.masks, masks)
        assert stack.masks[:, 1, 1, :].all()  # overlaps kept per channel
        assert stack.classes == CLASSES
        assert stack.spacing == SPACING
        assert stack.slice_numbers == tuple(range(1, len(images) + 1))
        assert stack.ids[0] == f"{stack.key}_slice_0001"
        assert stack.source == _scans(root, stack.key)
        assert stack.meta["dtype"] == "uint16" and len(stack.meta["paths"]) == len(
            images
        )


def test_slices_sorted_by_number_not_name(tmp_path):
    root = tmp_path / "d"
    truth = write_dataset(root, stacks={("case1", "day1"): 12}, first_slice=95)
    (stack,) = read_kaggle_dataset(root)
    assert stack.slice_numbers == tuple(range(95, 107))
    np.testing.assert_array_equal(stack.image, truth["case1_day1"][0])


@pytest.mark.parametrize("order", ["C", "F"])
def test_rle_order(tmp_path, order):
    root = tmp_path / "d"
    truth = write_dataset(root, order=order)
    stacks = read_kaggle_dataset(root, order=order)
    for stack in stacks:
        np.testing.assert_array_equal(stack.masks, truth[stack.key][1])
    other = read_kaggle_dataset(root, order="F" if order == "C" else "C")
    assert any(not np.array_equal(s.masks, truth[s.key][1]) for s in other)


def test_class_subset_selects_channels(dataset):
    root, truth = dataset
    stacks = read_kaggle_dataset(root, classes=("stomach", "large_bowel"))
    for stack in stacks:
        assert stack.classes == ("stomach", "large_bowel")
        np.testing.assert_array_equal(stack.masks, truth[stack.key][1][..., [2, 0]])


def test_unlabelled_without_csv(dataset):
    root, truth = dataset
    (root / "train.csv").unlink()
    stacks = read_kaggle_dataset(root)
    assert len(stacks) == 3 and all(s.masks is None for s in stacks)


def test_test_folder_is_unlabelled(dataset):
    root, _ = dataset
    (root / "train").rename(root / "test")
    stacks = read_kaggle_dataset(root, images_subdir="test")
    assert len(stacks) == 3 and all(s.masks is None for s in stacks)


def test_explicit_csv_path(dataset, tmp_path):
    root, truth = dataset
    moved = tmp_path / "labels.csv"
    (root / "train.csv").rename(moved)
    stacks = read_kaggle_dataset(root, csv_path=moved)
    assert all(s.masks is not None for s in stacks)


def test_scan_kaggle_images(dataset):
    root, _ = dataset
    table = scan_kaggle_images(root)
    assert len(table) == 7
    assert list(table.columns) == [
        "id",
        "case",
        "day",
        "slice",
        "path",
        "width",
        "height",
        "spacing_row",
        "spacing_col",
    ]
    row = table[table["id"] == "case7_day20_slice_0002"].iloc[0]
    assert (row["case"], row["day"], row["slice"]) == ("case7", "day20", 2)
    assert (row["width"], row["height"]) == (W, H)
    assert (row["spacing_row"], row["spacing_col"]) == SPACING
    assert row["path"].name == "slice_0002_8_6_1.63_1.50.png"


def test_scan_rejects_bad_names(dataset):
    root, _ = dataset
    bad = _scans(root) / "slice_0009_8_6.png"
    bad.write_bytes(b"")
    with pytest.raises(DataError, match=str(bad)):
        scan_kaggle_images(root)


def test_scan_rejects_misplaced_files(dataset):
    root, _ = dataset
    bad = root / "train" / "case7" / kaggle_png_name(1, (H, W), SPACING)
    bad.write_bytes(b"")
    with pytest.raises(DataError, match="caseN_dayM/scans"):
        scan_kaggle_images(root)


def test_missing_images_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_kaggle_dataset(tmp_path)


# --- PNG ----------------------------------------------------------------------------


def test_png_keeps_16_bit_values(tmp_path):
    array = np.array([[0, 255, 256], [300, 40000, 65535]], dtype=np.uint16)
    path = write_kaggle_png(tmp_path / "a.png", array)
    out = read_kaggle_png(path, expected_shape=(2, 3))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, array)
    # also files written by plain Pillow (mode I;16), as in the competition data
    Image.fromarray(array).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_kaggle_png(tmp_path / "b.png"), array)


def test_write_png_rejects_non_uint16(tmp_path):
    with pytest.raises(TypeError, match="uint16"):
        write_kaggle_png(tmp_path / "a.png", np.zeros((2, 2), dtype=np.uint8))
    assert not list(tmp_path.iterdir())


def _corrupt(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:40] + b"\x00garbage" * 4 + data[-12:])


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:45])


def _not_png(path: Path) -> None:
    path.write_bytes(b"this is not an image at all")


def _eight_bit(path: Path) -> None:
    Image.fromarray(np.arange(H * W, dtype=np.uint8).reshape(H, W)).save(path)


def _rgb16(path: Path) -> None:
    Image.fromarray(np.zeros((H, W, 3), dtype=np.uint8)).save(path)


def _wrong_size(path: Path) -> None:
    Image.fromarray(np.arange(W * H, dtype=np.uint16).reshape(W, H) * 300).save(path)


def _constant(path: Path) -> None:
    write_kaggle_png(path, np.full((H, W), 1234, dtype=np.uint16))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_corrupt, "corrupt"),
        (_truncate, "corrupt"),
        (_not_png, "not a PNG"),
        (_eight_bit, "16-bit grayscale PNG, got bit depth 8"),
        (_rgb16, "16-bit grayscale PNG"),
        (_wrong_size, "file name says 8x6"),
        (_constant, "constant image"),
    ],
)
def test_bad_png_names_the_file(dataset, damage, message):
    root, _ = dataset
    path = sorted(_scans(root).iterdir())[1]
    damage(path)
    with pytest.raises(DataError, match=message) as info:
        read_kaggle_png(path, expected_shape=(H, W))
    assert str(path) in str(info.value)
    with pytest.raises(DataError, match=message) as info:
        read_kaggle_dataset(root)
    assert str(path) in str(info.value)


# --- CSV and stack problems ----------------------------------------------------------


def _set_rle(value):
    def damage(root):
        frame = _csv(root)
        frame.loc[
            (frame["id"] == "case7_day20_slice_0002") & (frame["class"] == "stomach"),
            "segmentation",
        ] = value
        frame.to_csv(root / "train.csv", index=False)

    return damage


def _add_orphan_row(root):
    frame = _csv(root)
    frame.loc[len(frame)] = ["case7_day20_slice_0099", "stomach", ""]
    frame.to_csv(root / "train.csv", index=False)


def _drop_rows(root):
    frame = _csv(root)
    frame[frame["id"] != "case7_day20_slice_0002"].to_csv(
        root / "train.csv", index=False
    )


def _drop_one_class(root):
    frame = _csv(root)
    keep = ~((frame["id"] == "case7_day20_slice_0002") & (frame["class"] == "stomach"))
    frame[keep].to_csv(root / "train.csv", index=False)


def _duplicate_row(root):
    frame = _csv(root)
    pd.concat([frame, frame.iloc[[4]]]).to_csv(root / "train.csv", index=False)


def _unknown_class(root):
    frame = _csv(root)
    frame.loc[len(frame)] = ["case7_day20_slice_0002", "liver", ""]
    frame.to_csv(root / "train.csv", index=False)


def _bad_id(root):
    frame = _csv(root)
    frame.loc[len(frame)] = ["case7_slice_2", "stomach", ""]
    frame.to_csv(root / "train.csv", index=False)


def _gap(root):
    (_scans(root) / kaggle_png_name(2, (H, W), SPACING)).unlink()
    _drop_rows(root)


def _mixed_sizes(root):
    scans = _scans(root)
    (scans / kaggle_png_name(3, (H, W), SPACING)).unlink()
    write_kaggle_png(
        scans / kaggle_png_name(3, (H + 1, W), SPACING),
        np.arange((H + 1) * W, dtype=np.uint16).reshape(H + 1, W),
    )


def _duplicate_slice(root):
    write_kaggle_png(
        _scans(root) / kaggle_png_name(2, (H + 2, W), SPACING),
        np.arange((H + 2) * W, dtype=np.uint16).reshape(H + 2, W),
    )


def _missing_columns(root):
    _csv(root).rename(columns={"segmentation": "predicted"}).to_csv(
        root / "train.csv", index=False
    )


@pytest.mark.parametrize(
    ("damage", "names"),
    [
        (_set_rle("5 3 1"), ["row case7_day20_slice_0002 stomach", "odd number"]),
        (_set_rle("3 x"), ["row case7_day20_slice_0002 stomach", "malformed"]),
        (
            _set_rle(f"40 {H * W}"),
            ["row case7_day20_slice_0002 stomach", "out of bounds"],
        ),
        (_add_orphan_row, ["row case7_day20_slice_0099", "no image file"]),
        (_drop_rows, ["slice_0002_8_6_1.63_1.50.png", "has no rows"]),
        (
            _drop_one_class,
            ["case7_day20_slice_0002", "no row for class(es) ['stomach']"],
        ),
        (_duplicate_row, ["line 23", "duplicate row for id case7_day20_slice_0002"]),
        (_unknown_class, ["case7_day20_slice_0002", "unknown class 'liver'"]),
        (_bad_id, ["'case7_slice_2'", "does not match"]),
        (_gap, ["case7_day20/scans", "gap", "missing slice(s) 2 between 1 and 3"]),
        (_mixed_sizes, ["case7_day20/scans", "mixed image sizes", "8x6, 8x7"]),
        (_duplicate_slice, ["case7_day20", "duplicate slice 2"]),
        (_missing_columns, ["train.csv", "missing column(s) ['segmentation']"]),
    ],
)
def test_bad_dataset_names_the_problem(dataset, damage, names):
    root, _ = dataset
    damage(root)
    with pytest.raises(DataError) as info:
        read_kaggle_dataset(root)
    for name in names:
        assert name in str(info.value)
    report = validate_kaggle_dataset(root)
    assert len(report.problems) >= 1
    assert any(all(name in p for name in names) for p in report.problems), (
        report.problems
    )


def test_allow_gaps_reads_the_slices_present(dataset):
    root, truth = dataset
    _gap(root)
    stacks = {s.key: s for s in read_kaggle_dataset(root, allow_gaps=True)}
    stack = stacks["case7_day20"]
    assert stack.slice_numbers == (1, 3)
    assert stack.ids == ("case7_day20_slice_0001", "case7_day20_slice_0003")
    images, masks = truth["case7_day20"]
    np.testing.assert_array_equal(stack.image, images[[0, 2]].astype(np.float32))
    np.testing.assert_array_equal(stack.masks, masks[[0, 2]])
    assert gap_warning(str(stack.source), stack.slice_numbers).endswith(
        "case7_day20/scans: sparse stack: 1 slice(s) missing, 2 present between slice 1 and 3")
    assert all(gap_warning(s.key, s.slice_numbers) is None
               for k, s in stacks.items() if k != "case7_day20")
    report = validate_kaggle_dataset(root, allow_gaps=True)
    assert report.ok and len(report.warnings) == 1 and "case7_day20" in report.warnings[0]
    assert report.summary["n_sparse_stacks"] == 1
    assert "warning: " in report.format()


# --- submission ----------------------------------------------------------------------


def test_submission_round_trip(dataset, tmp_path):
    root, truth = dataset
    stacks = read_kaggle_dataset(root)
    pred = {s.key: ~s.masks for s in stacks}
    path = write_submission(
        stacks, tmp_path / "sub" / "submission.csv", masks_by_key=pred
    )
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["id", "class", "predicted"]
    assert len(frame) == sum(s.n_slices for s in stacks) * len(CLASSES)
    by_id = {s_id: (st, i) for st in stacks for i, s_id in enumerate(st.ids)}
    for slice_id, cls, rle in frame.itertuples(index=False):
        stack, s = by_id[slice_id]
        np.testing.assert_array_equal(
            rle_decode(rle, (H, W)), pred[stack.key][s, :, :, CLASSES.index(cls)]
        )


def test_stacks_to_rle_frame_order_f(dataset):
    root, truth = dataset
    stacks = read_kaggle_dataset(root)
    frame = stacks_to_rle_frame(stacks, order="F")
    assert list(frame.columns) == ["id", "class", "segmentation"]
    row = frame.iloc[3]
    stack = next(s for s in stacks if row["id"] in s.ids)
    mask = stack.masks[stack.ids.index(row["id"]), :, :, CLASSES.index(row["class"])]
    np.testing.assert_array_equal(
        rle_decode(row["segmentation"], (H, W), order="F"), mask
    )
    # the frame written as a train.csv reads back to the same masks
    write_train_csv(frame, root / "train.csv")
    for again, before in zip(read_kaggle_dataset(root, order="F"), stacks, strict=True):
        np.testing.assert_array_equal(again.masks, before.masks)


def test_submission_from_frame_renames_segmentation(dataset, tmp_path):
    root, _ = dataset
    frame = stacks_to_rle_frame(read_kaggle_dataset(root))
    path = write_submission(frame, tmp_path / "s.csv")
    assert pd.read_csv(path).columns.tolist() == ["id", "class", "predicted"]


def test_submission_errors_leave_no_file(dataset, tmp_path, monkeypatch):
    root, _ = dataset
    stacks = read_kaggle_dataset(root)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match="case7_day3: masks have shape"):
        write_submission(
            stacks, out / "s.csv", masks_by_key={s.key: s.masks[:1] for s in stacks}
        )
    with pytest.raises(DataError, match="no masks"):
        write_submission(stacks, out / "s.csv", masks_by_key={})

    def failing_to_csv(self, path, **kwargs):
        Path(path).write_text("id,class,predicted\npartial")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", failing_to_csv)
    with pytest.raises(OSError, match="disk full"):
        write_submission(stacks, out / "s.csv")
    assert os.listdir(out) == []


def test_write_train_csv_requires_columns(tmp_path):
    with pytest.raises(ValueError, match="segmentation"):
        write_train_csv(pd.DataFrame({"id": [], "class": []}), tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists()


# --- validation ----------------------------------------------------------------------


def test_validate_clean_summary(dataset):
    root, truth = dataset
    report = validate_kaggle_dataset(root)
    assert report.ok and report.problems == []
    s = report.summary
    assert (s["n_cases"], s["n_case_days"], s["n_slices"], s["n_rows"]) == (2, 3, 7, 21)
    assert s["shapes"] == {f"{H}x{W}": 7}
    assert s["spacings"] == {"1.50x1.63": 7}
    all_masks = np.concatenate([m for _, m in truth.values()])
    for c, cls in enumerate(CLASSES):
        expected = float((~all_masks[..., c].any(axis=(1, 2))).mean())
        assert s["empty_share"][cls] == pytest.approx(expected)
    assert "problems: 0" in report.format()


def test_validate_collects_every_problem(dataset):
    root, _ = dataset
    _set_rle("5 3 1")(root)
    _duplicate_row(root)
    _add_orphan_row(root)
    _constant(sorted(_scans(root, "case10_day1").iterdir())[0])
    _eight_bit(sorted(_scans(root, "case7_day3").iterdir())[1])
    (_scans(root) / "notes.txt").write_text("x")
    report = validate_kaggle_dataset(root)
    assert len(report.problems) == 6, report.problems
    text = " | ".join(report.problems)
    for part in [
        "odd number",
        "duplicate row",
        "no image file",
        "constant image",
        "bit depth 8",
        "notes.txt",
    ]:
        assert part in text
    lines = report.format().splitlines()
    assert all(p in lines for p in report.problems)


def test_validate_missing_folder_is_a_problem(tmp_path):
    report = validate_kaggle_dataset(tmp_path)
    assert len(report.problems) == 1 and "does not exist" in report.problems[0]


# --- phantom ------------------------------------------------------------------------


def test_phantom_loads_and_validates(tmp_path):
    phantom = pytest.importorskip("gitract.data.phantom")
    config = phantom.PhantomConfig(
        n_cases=2, n_days=1, n_slices=4, sizes=((80, 64),), spacings=(1.63,)
    )
    root = Path(phantom.write_phantom(tmp_path / "ph", config))
    report = validate_kaggle_dataset(root)
    assert report.problems == []
    stacks = read_kaggle_dataset(root)
    assert len(stacks) == 2 and all(s.masks is not None for s in stacks)
    assert all(s.shape == (64, 80) and s.n_slices == 4 for s in stacks)
    assert all(s.spacing == (1.63, 1.63) for s in stacks)
    assert any(s.masks.any() for s in stacks)
    assert report.summary["n_slices"] == 8
