"""``gitract export nnunet``: volumes that round-trip every mask with their spacing and
overlaps, ``dataset.json`` regions, a run's split as ``splits_final.json``; and ``export
coco`` without a split."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from gitract.cli import main
from gitract.data.index import index_dataset
from gitract.data.nnunet_export import (
    DEFAULT_SLICE_THICKNESS,
    dataset_json,
    decode_labels,
    encode_labels,
    identifier,
)
from gitract.data.phantom import PhantomConfig, write_phantom

TINY = ["--block-size", "9", "--step", "8", "--n-per-class", "20", "--background-cap", "40",
        "--param", "n_estimators=5", "--param", "n_jobs=1"]


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    config = PhantomConfig(n_cases=4, n_days=2, n_slices=4, sizes=((64, 64), (80, 64)))
    return write_phantom(tmp_path_factory.mktemp("nnunet") / "ph", config)


@pytest.fixture(scope="module")
def split_file(phantom_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "rf"
    assert main(["blocks", "train", "--data", "kaggle", "--path", str(phantom_dir), *TINY,
                 "--out", str(run), "--no-progress"]) == 0
    return run / "splits.json"


def test_labels_keep_every_overlap_as_a_bit_set():
    combos = np.array([[(v >> c) & 1 for c in range(3)] for v in range(8)], dtype=bool)
    labels = encode_labels(combos)
    assert labels.tolist() == list(range(8))
    assert np.array_equal(decode_labels(labels, 3), combos)
    meta = dataset_json(("a", "b", "c"), 5)
    assert meta["labels"] == {"background": 0, "a": [1, 3, 5, 7], "b": [2, 3, 6, 7],
                              "c": [4, 5, 6, 7]}
    assert meta["regions_class_order"] == [1, 2, 4]


def test_export_round_trips_every_mask_with_its_spacing(phantom_dir, tmp_path, capsys):
    out = tmp_path / "raw"
    assert main(["export", "nnunet", str(phantom_dir), "--out", str(out), "--no-progress"]) == 0
    assert "no folds" in capsys.readouterr().out
    folder = out / "Dataset501_gitract"
    meta = json.loads((folder / "dataset.json").read_text())
    index = index_dataset("kaggle", phantom_dir)
    assert meta["numTraining"] == len(index.keys()) and not (folder / "imagesTs").exists()
    assert not (folder / "splits_final.json").exists()
    for stack in index.iter_stacks():
        ident = identifier(stack.key)
        image = nib.load(folder / "imagesTr" / f"{ident}_0000.nii.gz")
        label = nib.load(folder / "labelsTr" / f"{ident}.nii.gz")
        # nibabel order (column, row, slice); spacing from the record, 3 mm slices
        assert image.header.get_zooms()[:3] == pytest.approx(
            (stack.spacing[1], stack.spacing[0], DEFAULT_SLICE_THICKNESS))
        assert np.array_equal(np.asarray(image.dataobj).transpose(2, 1, 0), stack.image)
        masks = decode_labels(np.asarray(label.dataobj).transpose(2, 1, 0), len(stack.classes))
        assert np.array_equal(masks, stack.masks)
    sitk = pytest.importorskip("SimpleITK")  # nnU-Net's reader sees (slice, row, column)
    img = sitk.ReadImage(str(folder / "imagesTr" / f"{identifier(stack.key)}_0000.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(img), stack.image)
    assert img.GetSpacing()[2] == pytest.approx(DEFAULT_SLICE_THICKNESS)


def test_a_run_split_becomes_splits_final(phantom_dir, split_file, tmp_path, capsys):
    out = tmp_path / "raw"
    assert main(["export", "nnunet", str(phantom_dir), "--split", str(split_file),
                 "--out", str(out), "--dataset-id", "7", "--no-progress"]) == 0
    assert "1 folds in splits_final.json" in capsys.readouterr().out
    folder = out / "Dataset007_gitract"
    splits = json.loads(split_file.read_text())
    final = json.loads((folder / "splits_final.json").read_text())
    index = index_dataset("kaggle", phantom_dir)
    assert len(final) == len(splits["folds"])
    for fold, entry in zip(splits["folds"], final, strict=True):
        for part in ("train", "val"):
            assert entry[part] == [identifier(k) for k in index.keys_of(fold[part])]
            assert {index.ref(k).case for k in index.keys() if identifier(k) in entry[part]} \
                == set(fold[part])
    written = sorted(p.name[:-len("_0000.nii.gz")] for p in (folder / "imagesTr").iterdir())
    assert written == sorted(i for e in final for p in ("train", "val") for i in e[p])
    assert json.loads((out / ".gitract.json").read_text())["kind"] == "nnunet"


def test_export_refuses_a_folder_it_did_not_write(phantom_dir, tmp_path, capsys):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["export", "nnunet", str(phantom_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_coco_without_a_split_puts_every_case_in_train(phantom_dir, tmp_path, capsys):
    out = tmp_path / "coco"
    assert main(["export", "coco", str(phantom_dir), "--out", str(out)]) == 0
    data = json.loads((out / "train.json").read_text())
    assert sorted({im["case"] for im in data["images"]}) == ["case1", "case2", "case3", "case4"]
    assert not (out / "val.json").exists() and not (out / "test.json").exists()
