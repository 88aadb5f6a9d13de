"""``gitract export coco|coco-pred|nnunet``: files per part of a run's split (or of every
case), predictions that load against them, nnU-Net volumes that round-trip every mask with
its spacing and overlaps and the split as ``splits_final.json``, and bad inputs that end in
one line."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from pycocotools.coco import COCO

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
    config = PhantomConfig(n_cases=4, n_days=1, n_slices=4, sizes=((64, 64),))
    return write_phantom(tmp_path_factory.mktemp("export") / "ph", config)


@pytest.fixture(scope="module")
def trained(phantom_dir, tmp_path_factory):
    """A training run (train and val cases, no test cases) of a tiny random forest."""
    run = tmp_path_factory.mktemp("runs") / "rf"
    assert main(["blocks", "train", "--data", "kaggle", "--path", str(phantom_dir), *TINY,
                 "--out", str(run), "--no-progress"]) == 0
    return run


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_coco_writes_the_parts_of_a_run_split(trained, phantom_dir, tmp_path, capsys):
    out = tmp_path / "coco"
    assert main(["export", "coco", str(phantom_dir), "--split", str(trained / "splits.json"),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    fold = json.loads((trained / "splits.json").read_text())["folds"][0]
    assert sorted(p.name for p in out.iterdir()) == [".gitract.json", "train.json", "val.json"]
    assert "no cases in test of fold 0: not written" in text
    for part in ("train", "val"):
        data = json.loads((out / f"{part}.json").read_text())
        assert sorted({im["case"] for im in data["images"]}) == fold[part]
        assert data["info"]["part"] == part and data["info"]["fold"] == 0
        assert f"wrote {out / f'{part}.json'}: {len(fold[part])} cases, " \
               f"{len(data['images'])} images, {len(data['annotations'])} annotations" in text


def test_coco_pred_loads_against_the_exported_part(trained, phantom_dir, tmp_path, capsys):
    from gitract.compare._predict import load_trained_track
    from gitract.data.index import index_dataset

    out = tmp_path / "coco"
    assert main(["export", "coco", str(phantom_dir), "--split", str(trained / "splits.json"),
                 "--out", str(out)]) == 0
    assert main(["export", "coco-pred", str(trained), "--data-dir", str(phantom_dir),
                 "--images-subdir", "train", "--part", "val", "--out", str(out)]) == 0
    results_path = out / "rf-9_fold0_val.json"
    assert f"wrote {results_path}:" in capsys.readouterr().out
    gt = COCO(str(out / "val.json"))
    results = json.loads(results_path.read_text())
    assert results and set(results[0]) >= {"image_id", "category_id", "segmentation", "score"}
    pred = gt.loadRes(str(results_path))
    # The masks are the track's thresholded predictions, the score the mean probability
    # inside each mask.
    adapter, tuning = load_trained_track(trained, None)
    index = index_dataset("kaggle", phantom_dir)
    by_slice = {im["slice_id"]: im["id"] for im in gt.imgs.values()}
    n = 0
    for key in index.keys_of(json.loads((trained / "splits.json").read_text())
                             ["folds"][0]["val"]):
        stack = index.read(key)
        proba = adapter.predict_proba_stack(stack)
        masks = tuning.apply(proba, stack.slice_numbers)
        for i, sid in enumerate(stack.ids):
            anns = pred.loadAnns(pred.getAnnIds(imgIds=by_slice[sid]))
            got = np.zeros(masks[i].shape, bool)
            for ann in anns:
                k = ann["category_id"] - 1
                got[:, :, k] = pred.annToMask(ann).astype(bool)
                assert ann["score"] == pytest.approx(float(proba[i][:, :, k][got[:, :, k]].mean()))
                n += 1
            np.testing.assert_array_equal(got, masks[i])
    assert n == len(results)


def test_coco_pred_without_part_predicts_every_scan(trained, phantom_dir, tmp_path, capsys):
    assert main(["export", "coco-pred", str(trained), "--data-dir", str(phantom_dir),
                 "--images-subdir", "train", "--out", str(tmp_path)]) == 0
    assert "on 16 slices" in capsys.readouterr().out  # 4 cases x 4 slices
    assert (tmp_path / "rf-9_fold0_all.json").is_file()


@pytest.mark.parametrize("case", ["missing split", "unknown fold", "bad json", "not a folder",
                                  "foreign cases"])
def test_bad_coco_inputs_end_in_one_line(case, trained, phantom_dir, tmp_path, capsys):
    split = trained / "splits.json"
    data, fold = phantom_dir, "0"
    if case == "missing split":
        split = tmp_path / "run" / "splits.json"
        expected = f"error: {split}: no such file (a run folder's splits.json is written by"
    elif case == "unknown fold":
        fold = "3"
        expected = f"error: {split}: no fold 3 (the split has folds 0 to 0)"
    elif case == "bad json":
        split = tmp_path / "splits.json"
        split.write_text("{not json")
        expected = f"error: {split}: cannot read the split"
    elif case == "not a folder":
        data = tmp_path / "nowhere"
        expected = f"error: {data}: no such folder"
    else:
        split = tmp_path / "splits.json"
        split.write_text(json.dumps({"folds": [{"train": ["case1", "case77"], "val": [],
                                                "test": []}]}))
        expected = f"error: {data}: 1 case(s) of {split} are not in this kaggle data (case77)"
    out = tmp_path / "out"
    assert main(["export", "coco", str(data), "--split", str(split), "--fold", fold,
                 "--out", str(out)]) == 2
    assert _error(capsys).startswith(expected)
    assert not out.exists()


def test_coco_pred_on_an_empty_part_ends_in_one_line(trained, phantom_dir, tmp_path, capsys):
    assert main(["export", "coco-pred", str(trained), "--data-dir", str(phantom_dir),
                 "--images-subdir", "train", "--part", "test", "--out", str(tmp_path)]) == 2
    assert _error(capsys) == f"error: {trained / 'splits.json'}: fold 0 has no test cases"


def test_a_phantom_split_reads_the_folder_given_and_never_writes_a_phantom(phantom_dir,
                                                                          tmp_path, capsys):
    split = tmp_path / "splits.json"
    dataset = {"kind": "phantom", "path": None, "options": {}}
    split.write_text(json.dumps({"folds": [{"train": ["case1"], "val": ["case2"],
                                            "test": ["case3"]}], "dataset": dataset}))
    assert main(["export", "coco", str(phantom_dir), "--split", str(split),
                 "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".gitract.json", "test.json", "train.json", "val.json"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["export", "coco", str(empty), "--split", str(split),
                 "--out", str(tmp_path / "out2")]) == 2
    assert _error(capsys).startswith(f"error: {empty / 'train'}")
    assert not list(empty.iterdir())  # no phantom generated into it


@pytest.mark.real_data
def test_real_slices_export_with_the_kind_their_split_records(uwmgi_dir, tmp_path, capsys):
    from gitract.data.index import index_dataset
    from gitract.data.splits import make_case_splits

    cases = index_dataset("uwmgi_derived", uwmgi_dir).cases()
    made = make_case_splits(cases, n_folds=2, n_test=2)
    split = tmp_path / "splits.json"
    split.write_text(json.dumps({**made, "dataset": {"kind": "uwmgi_derived", "options": {}}}))
    assert main(["export", "coco", str(uwmgi_dir), "--split", str(split), "--fold", "1",
                 "--out", str(tmp_path / "out")]) == 0
    coco = COCO(str(tmp_path / "out" / "test.json"))
    assert sorted({im["case"] for im in coco.imgs.values()}) == made["test"]
    assert all((uwmgi_dir / im["file_name"]).is_file() for im in coco.imgs.values())
    assert coco.anns and [c["name"] for c in coco.cats.values()] == [
        "large_bowel", "small_bowel", "stomach"]
    # Without the recorded kind the folder is not in the Kaggle layout: one line.
    split.write_text(json.dumps(made))
    assert main(["export", "coco", str(uwmgi_dir), "--split", str(split),
                 "--out", str(tmp_path / "out3")]) == 2
    assert _error(capsys).startswith(f"error: {uwmgi_dir / 'train'}: no such folder (DATA_DIR "
                                      "read in the Kaggle layout; another layout needs --kind")


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


def test_a_run_split_becomes_splits_final(phantom_dir, trained, tmp_path, capsys):
    split_file = trained / "splits.json"
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


def test_nnunet_export_refuses_a_folder_it_did_not_write(phantom_dir, tmp_path, capsys):
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
