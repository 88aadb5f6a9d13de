"""NIfTI reader: synthetic volumes (orientation, spacing, class merging, errors) and real sets."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from gitract.constants import CLASSES
from gitract.data.nifti import (
    COLIN27_DEFAULT_CLASSES,
    read_aal_names,
    read_colin27,
    read_nifti_volume,
    read_totalseg_examples,
)
from gitract.data.record import DataError

NAMES = {1: "stomach", 2: "colon", 3: "rectum", 4: "liver"}


def _write(path, data, zooms=(0.8, 0.9, 2.5), codes="RAS"):
    affine = np.diag([*zooms, 1.0])
    if codes == "LPS":
        affine[0, 0] *= -1
        affine[1, 1] *= -1
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.fixture
def volume(tmp_path, rng):
    """A (X=6, Y=8, Z=5) RAS volume with labels in known corners."""
    image = rng.normal(100, 10, size=(6, 8, 5)).astype(np.int16)
    labels = np.zeros((6, 8, 5), dtype=np.uint8)
    labels[5, 7, 1] = 1  # subject right, anterior, slice 1
    labels[0, 0, 3] = 2  # subject left, posterior, slice 3
    labels[0, 1, 3] = 3
    return (_write(tmp_path / "img.nii.gz", image), _write(tmp_path / "lab.nii.gz", labels),
            image, labels)


def test_axial_slices_are_radiological(volume):
    img_path, lab_path, image, labels = volume
    st = read_nifti_volume(img_path, lab_path, label_names=NAMES, classes=["stomach", "colon"])
    # axial: S = Z, rows = Y reversed (anterior at the top), cols = X reversed
    assert st.image.shape == (5, 8, 6) and st.masks.shape == (5, 8, 6, 2)
    assert st.spacing == pytest.approx((0.9, 0.8)) and st.slice_thickness == pytest.approx(2.5)
    assert st.masks[1, 0, 0, 0]  # subject right + anterior -> top-left of the image
    assert st.masks[3, 7, 5, 1]  # subject left + posterior -> bottom-right
    assert st.masks.sum() == 2
    np.testing.assert_array_equal(st.image[2], image[::-1, ::-1, 2].T.astype(np.float32))
    assert st.case == "img" and st.ids[0] == "img_slice_0000" and st.image.dtype == np.float32


def test_array_orientation_and_other_axes(volume):
    img_path, lab_path, image, _ = volume
    st = read_nifti_volume(img_path, lab_path, label_names=NAMES, axis=0, orientation="array")
    assert st.image.shape == (6, 8, 5) and st.spacing == pytest.approx((0.9, 2.5))
    assert st.slice_thickness == pytest.approx(0.8)
    np.testing.assert_array_equal(st.image, image.astype(np.float32))
    cor = read_nifti_volume(img_path, None, label_names=NAMES, axis=1)
    assert cor.image.shape == (8, 5, 6) and cor.masks is None


def test_lps_input_is_made_canonical(tmp_path, volume):
    _, _, image, labels = volume
    ras = read_nifti_volume(volume[0], volume[1], label_names=NAMES)
    # the same anatomy stored LPS: flip the first two array axes and the affine signs
    img = _write(tmp_path / "lps.nii.gz", image[::-1, ::-1].copy(), codes="LPS")
    lab = _write(tmp_path / "lps_lab.nii.gz", labels[::-1, ::-1].copy(), codes="LPS")
    lps = read_nifti_volume(img, lab, label_names=NAMES)
    np.testing.assert_array_equal(lps.image, ras.image)
    np.testing.assert_array_equal(lps.masks, ras.masks)


def test_classes_merge_names_and_ids(volume):
    img_path, lab_path, *_ = volume
    st = read_nifti_volume(img_path, lab_path, label_names=NAMES,
                           classes={"large_bowel": ["colon", 3], "stomach": "stomach"})
    assert st.classes == ("large_bowel", "stomach")
    assert st.masks[..., 0].sum() == 2 and st.masks[..., 1].sum() == 1
    assert st.meta["class_label_ids"] == {"large_bowel": [2, 3], "stomach": [1]}
    default = read_nifti_volume(img_path, lab_path, label_names=NAMES)
    assert default.classes == ("stomach", "colon", "rectum", "liver")
    with pytest.raises(ValueError, match="'kidney'"):
        read_nifti_volume(img_path, lab_path, label_names=NAMES, classes=["kidney"])


def test_unreadable_nifti_raises_naming_file(tmp_path, volume):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(gzip.compress(b"not a nifti header" * 10))
    with pytest.raises(DataError, match=r"broken\.nii\.gz: cannot read NIfTI"):
        read_nifti_volume(bad, volume[1], label_names=NAMES)
    with pytest.raises(DataError, match=r"missing\.nii\.gz: cannot read NIfTI"):
        read_nifti_volume(volume[0], tmp_path / "missing.nii.gz", label_names=NAMES)


def test_shape_mismatch_raises_naming_label(tmp_path, volume):
    lab = _write(tmp_path / "small_lab.nii.gz", np.zeros((6, 8, 4), np.uint8))
    with pytest.raises(DataError, match=r"small_lab\.nii\.gz: label shape \(6, 8, 4\)"):
        read_nifti_volume(volume[0], lab, label_names=NAMES)


def test_non_3d_and_nan_raise(tmp_path, volume):
    flat = _write(tmp_path / "flat.nii", np.zeros((6, 8), np.float32), zooms=(1, 1, 1))
    with pytest.raises(DataError, match=r"flat\.nii: expected a 3D volume"):
        read_nifti_volume(flat, None, label_names=NAMES)
    data = np.ones((6, 8, 5), np.float32)
    data[1, 2, 3] = np.nan
    nan = _write(tmp_path / "nan.nii.gz", data)
    with pytest.raises(DataError, match=r"nan\.nii\.gz: image contains NaN"):
        read_nifti_volume(nan, volume[1], label_names=NAMES)


# --- real data ------------------------------------------------------------------------

@pytest.mark.real_data
def test_totalseg_examples(totalseg_dir):
    ct, mr = read_totalseg_examples(totalseg_dir)
    # files are (x, y, z) = CT 122x101x30, MR 117x91x20; axial slices: (z, y, x)
    assert ct.case == "totalseg_ct" and ct.image.shape == (30, 101, 122)
    assert mr.case == "totalseg_mr" and mr.image.shape == (20, 91, 117)
    for st, counts in ((ct, (12993, 1020, 4675)), (mr, (1683, 356, 4221))):
        assert st.classes == CLASSES
        assert st.spacing == (3.0, 3.0) and st.slice_thickness == 3.0
        assert tuple(st.masks.sum(axis=(0, 1, 2)).tolist()) == counts  # labels_present.json
        assert st.meta["labels_are_predictions"] is True
        assert st.meta["canonical_axcodes"] == "RAS"
    assert ct.image.min() == -1100 and ct.image.max() == 1207  # HU kept
    # small bowel only on the lowest axial slices (PROVENANCE: CT 0..6, MR 0..4)
    assert np.flatnonzero(ct.masks[..., 1].any(axis=(1, 2))).max() <= 6
    assert np.flatnonzero(mr.masks[..., 1].any(axis=(1, 2))).max() <= 4


@pytest.mark.real_data
@pytest.mark.parametrize("which", [0, 1])
def test_totalseg_radiological_layout(totalseg_dir, which):
    """Liver on the image left (subject right), spleen right, spinal cord at the back."""
    import json

    present = json.loads((totalseg_dir / "labels_present.json").read_text())
    ref = totalseg_dir / "tests" / "reference_files"
    image, label = [("example_ct_sm.nii.gz", "example_seg.nii.gz"),
                    ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz")][which]
    names = {int(k): v["name"] for k, v in present[label]["labels"].items()}
    st = read_nifti_volume(ref / image, ref / label, label_names=names,
                           classes=["liver", "spleen", "spinal_cord"])
    h, w = st.shape
    centre = [np.argwhere(st.masks[..., k])[:, 1:].mean(axis=0) / (h, w) for k in range(3)]
    assert centre[0][1] < 0.5 < centre[1][1]
    assert centre[2][0] > 0.6


@pytest.mark.real_data
def test_colin27(colin_dir):
    names = read_aal_names(colin_dir / "usr/share/mricron/templates/aal.nii.txt")
    assert len(names) == 116 and names[37] == "Hippocampus_L"
    (st,) = read_colin27(colin_dir, classes={**COLIN27_DEFAULT_CLASSES, "hl": ["Hippocampus_L"]})
    assert st.case == "colin27" and st.image.shape == (181, 217, 181)
    assert st.classes == (*COLIN27_DEFAULT_CLASSES, "hl")
    assert st.spacing == (1.0, 1.0) and st.slice_thickness == 1.0
    counts = st.masks.sum(axis=(0, 1, 2))
    assert (counts > 5_000).all()
    assert not (st.masks[..., :4].sum(axis=-1) > 1).any()
    # left structures sit on the image right (radiological view)
    assert np.argwhere(st.masks[..., 4])[:, 2].mean() > st.shape[1] / 2
    assert not (st.masks[..., 4] & ~st.masks[..., 3]).any()  # left part of hippocampus
