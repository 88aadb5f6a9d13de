"""COCO export: RLE as COCO defines it, annotations per class mask, and the round trip
through ``pycocotools.coco.COCO`` on the phantom and on the real slices."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from gitract.data.coco import (
    coco_dataset,
    decode_mask,
    encode_mask,
    mask_annotations,
    stack_images,
)
from gitract.data.coco_export import (
    export_coco,
    image_id_offsets,
    split_parts,
)
from gitract.data.index import ScanSource, index_dataset
from gitract.data.phantom import PhantomConfig, write_phantom
from gitract.data.record import DataError
from gitract.data.splits import make_case_splits


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    # Non-square slices, two days per case: a transposed mask or a mixed-up scan shows.
    config = PhantomConfig(n_cases=4, n_days=2, n_slices=5, sizes=((64, 80),))
    return write_phantom(tmp_path_factory.mktemp("coco") / "ph", config)


# ------------------------------------------------------------------------------ RLE
def test_encoding_is_cocos_column_major_rle():
    # Runs over columns: column 0 is (0, 1, 1), column 1 is (1, 0, 0) -> 0 1 1 1 0 0.
    mask = np.array([[0, 1], [1, 0], [1, 0]], dtype=bool)
    expected = mask_utils.frPyObjects({"size": [3, 2], "counts": [1, 3, 2]}, 3, 2)
    assert encode_mask(mask) == {"size": [3, 2], "counts": expected["counts"].decode()}


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 80), (80, 64)])
@pytest.mark.parametrize("fill", ["empty", "full", "random"])
def test_decode_inverts_encode(shape, fill, rng):
    mask = {"empty": np.zeros(shape, bool), "full": np.ones(shape, bool),
            "random": rng.random(shape) < 0.3}[fill]
    rle = encode_mask(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == list(shape)
    json.dumps(rle)
    np.testing.assert_array_equal(decode_mask(rle), mask)


def test_mask_annotations_one_per_non_empty_class_with_area_bbox_and_score():
    mask = np.zeros((6, 8, 3), dtype=bool)
    mask[2:5, 1:6, 0] = True          # rows 2-4, cols 1-5
    mask[3, 4, 2] = True              # overlaps class 0: channels are kept apart
    proba = np.zeros((6, 8, 3), np.float32)
    proba[2:5, 1:6, 0] = 0.5
    proba[2, 1, 0] = 0.8
    anns = mask_annotations(mask, image_id=7, proba=proba)
    assert [(a["image_id"], a["category_id"]) for a in anns] == [(7, 1), (7, 3)]
    first = anns[0]
    assert first["area"] == 15 and first["bbox"] == [1.0, 2.0, 5.0, 3.0]
    assert first["iscrowd"] == 0
    assert first["score"] == pytest.approx((14 * 0.5 + 0.8) / 15)
    assert anns[1]["area"] == 1 and anns[1]["score"] == 0.0
    for ann, k in zip(anns, (0, 2), strict=True):
        np.testing.assert_array_equal(decode_mask(ann["segmentation"]), mask[:, :, k])
    assert mask_annotations(np.zeros((4, 4, 3), bool), image_id=1) == []
    assert "score" not in mask_annotations(mask, image_id=1)[0]


def test_mask_annotations_rejects_a_proba_of_another_shape():
    with pytest.raises(ValueError, match="proba shape"):
        mask_annotations(np.zeros((4, 4, 3), bool), image_id=1, proba=np.zeros((4, 4, 2)))


def test_coco_dataset_numbers_annotations_and_names_categories(phantom_dir):
    index = index_dataset("kaggle", phantom_dir)
    stack = index.read(index.keys()[0])
    images = stack_images(stack, first_id=3, root=phantom_dir)
    assert [im["id"] for im in images] == list(range(3, 3 + stack.n_slices))
    assert all((phantom_dir / im["file_name"]).is_file() for im in images)
    assert images[0]["height"] == 80 and images[0]["width"] == 64
    anns = [a for i in range(stack.n_slices)
            for a in mask_annotations(stack.masks[i], image_id=3 + i)]
    data = coco_dataset(images, anns, stack.classes)
    assert [a["id"] for a in data["annotations"]] == list(range(1, len(anns) + 1))
    assert [c["name"] for c in data["categories"]] == list(stack.classes)


# ---------------------------------------------------------------------------- splits
def test_split_parts_reads_both_split_layouts_and_names_a_bad_fold():
    run = {"folds": [{"train": ["a"], "val": ["b"], "test": ["c"]}]}
    made = make_case_splits(["a", "b", "c", "d", "e"], n_folds=1, n_test=1, n_val=1)
    assert split_parts(run) == {"train": ["a"], "val": ["b"], "test": ["c"]}
    parts = split_parts(made)
    assert parts["test"] == made["test"] and parts["val"] == made["folds"][0]["val"]
    with pytest.raises(DataError, match=r"x.json: no fold 1 \(the split has folds 0 to 0\)"):
        split_parts(run, fold=1, where="x.json")
    with pytest.raises(DataError, match="'a' is in both train and test"):
        split_parts({"folds": [{"train": ["a"], "val": [], "test": ["a"]}]})
    with pytest.raises(DataError, match="no 'folds' list"):
        split_parts({"test": []})


# ------------------------------------------------------------------------ round trip
def _check_round_trip(index, splits, out, root, fold=0):
    """Export, read back with pycocotools, and compare every mask of every slice."""
    written = export_coco(index, splits, out, root=root, fold=fold)
    parts = split_parts(splits, fold=fold)
    offsets = image_id_offsets(index)
    for part, cases in parts.items():
        if not cases:
            assert part in written["skipped"] and not (out / f"{part}.json").exists()
            continue
        coco = COCO(str(written[part]["path"]))
        keys = index.keys_of(cases)
        assert len(coco.getImgIds()) == sum(index.ref(k).n_slices for k in keys)
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(index.classes)
        for key in keys:
            stack = index.read(key)
            for i in range(stack.n_slices):
                image = coco.imgs[offsets[key] + i]
                assert (image["slice_id"], image["case"], image["day"], image["slice"]) == (
                    stack.ids[i], stack.case, stack.day, stack.slice_numbers[i])
                assert (image["height"], image["width"]) == stack.shape
                assert (root / image["file_name"]).is_file()
                got = np.zeros(stack.masks[i].shape, bool)
                for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
                    channel = ann["category_id"] - 1
                    assert not got[:, :, channel].any()  # one annotation per class
                    got[:, :, channel] = coco.annToMask(ann).astype(bool)
                    assert ann["area"] == got[:, :, channel].sum() > 0
                np.testing.assert_array_equal(got, stack.masks[i])
    return written


def test_phantom_round_trip_recovers_every_mask(phantom_dir, tmp_path):
    index = index_dataset("kaggle", phantom_dir)
    splits = make_case_splits(index.cases(), n_folds=1, n_test=1, n_val=1)
    written = _check_round_trip(index, splits, tmp_path, phantom_dir)
    assert {p: written[p]["cases"] for p in ("train", "val", "test")} == {
        "train": 2, "val": 1, "test": 1}
    assert written["train"]["annotations"] > 0


def test_export_reads_each_scan_once(phantom_dir, tmp_path, monkeypatch):
    reads = []
    original = ScanSource.read
    monkeypatch.setattr(ScanSource, "read", lambda self: reads.append(self.ref.key)
                        or original(self))
    index = index_dataset("kaggle", phantom_dir)
    splits = {"folds": [{"train": ["case1"], "val": ["case2"], "test": []}]}
    export_coco(index, splits, tmp_path, root=phantom_dir)
    assert sorted(reads) == sorted(index.keys_of(["case1", "case2"]))  # case3/4: unread
    assert not (tmp_path / "test.json").exists()


def test_export_names_split_cases_missing_from_the_data(phantom_dir, tmp_path):
    index = index_dataset("kaggle", phantom_dir)
    splits = {"folds": [{"train": ["case1", "case99"], "val": [], "test": []}]}
    with pytest.raises(DataError, match=r"1 case\(s\) of s.json are not in this kaggle data "
                                        r"\(case99\)"):
        export_coco(index, splits, tmp_path, root=phantom_dir, where="s.json")
    assert not list(tmp_path.iterdir())


@pytest.mark.real_data
def test_real_slices_round_trip_recovers_every_mask(uwmgi_dir, tmp_path):
    index = index_dataset("uwmgi_derived", uwmgi_dir)
    splits = make_case_splits(index.cases(), n_folds=1, n_test=2, n_val=1)
    written = _check_round_trip(index, splits, tmp_path, uwmgi_dir)
    assert sum(written[p]["images"] for p in ("train", "val", "test")) == index.n_slices
    image = json.loads(written["test"]["path"].read_text())["images"][0]
    assert image["file_name"].startswith("images/case") and image["height"] == 512
