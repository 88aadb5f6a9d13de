"""load_dataset dispatch."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gitract.data.loaders import DATASET_KINDS, load_dataset
from gitract.data.record import DataError


def test_unknown_kind_is_named():
    with pytest.raises(ValueError, match="'dicom'"):
        load_dataset("dicom")


@pytest.mark.parametrize("kind", ["kaggle", "pairs", "nifti"])
def test_kinds_needing_a_path(kind):
    with pytest.raises(ValueError, match="needs a path"):
        load_dataset(kind)


def test_missing_real_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("isbi2012", tmp_path / "nowhere")


def test_pairs_kind(tmp_path, rng):
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    image = rng.integers(0, 255, size=(8, 8), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "images" / "case1_day1_slice_0003.png")
    Image.fromarray((image > 100).astype(np.uint8)).save(
        tmp_path / "masks" / "case1_day1_slice_0003.png")
    (st,) = load_dataset("pairs", tmp_path, classes=["fg"], label_values={"fg": 1})
    assert st.key == "case1_day1" and st.masks.shape == (1, 8, 8, 1)


def test_nifti_kind(tmp_path, rng):
    import nibabel as nib

    nib.save(nib.Nifti1Image(rng.normal(size=(4, 5, 3)).astype(np.float32), np.eye(4)),
             str(tmp_path / "v.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((4, 5, 3), np.uint8), np.eye(4)), str(tmp_path / "l.nii.gz"))
    (st,) = load_dataset("nifti", tmp_path / "v.nii.gz", label_path=tmp_path / "l.nii.gz",
                         label_names={1: "organ"})
    assert st.image.shape == (3, 5, 4) and st.masks.all()


@pytest.mark.real_data
@pytest.mark.parametrize("kind, n_slices", [("uwmgi_derived", 24), ("isbi2012", 30),
                                            ("totalseg", 50)])
def test_real_kinds_default_paths(kind, n_slices):
    from gitract.paths import shared_data_dir

    folder = {"uwmgi_derived": "uwmgi_derived_512", "isbi2012": "isbi2012_em",
              "totalseg": "totalseg_examples"}[kind]
    if not (shared_data_dir() / folder).is_dir():
        pytest.skip(f"real data folder {shared_data_dir() / folder} is absent")
    assert sum(s.n_slices for s in load_dataset(kind)) == n_slices


def test_colin27_kind_forwards_options(colin_dir):
    (st,) = load_dataset("colin27", colin_dir, classes={"thalamus": ["Thalamus_L", "Thalamus_R"]},
                         axis=0)
    assert st.classes == ("thalamus",) and st.image.shape == (181, 181, 217)


def test_phantom_kind_generates_then_reads(tmp_path, monkeypatch):
    phantom = pytest.importorskip("gitract.data.phantom", reason="phantom not written yet")
    pytest.importorskip("gitract.data.kaggle", reason="kaggle reader not written yet")
    if not hasattr(phantom, "write_phantom"):
        pytest.skip("gitract.data.phantom.write_phantom not written yet")

    calls = []
    real_write = phantom.write_phantom

    def counting_write(*args, **kwargs):
        calls.append(args)
        return real_write(*args, **kwargs)

    import gitract.data.loaders as loaders

    monkeypatch.setattr(loaders, "write_phantom", counting_write)  # what load_dataset calls
    config = _tiny_phantom_config(phantom)
    first = load_dataset("phantom", tmp_path / "ph", config=config)
    second = load_dataset("phantom", tmp_path / "ph", config=config)
    assert len(calls) == 1  # generated once, then read from disk
    assert [s.key for s in first] == [s.key for s in second] and first
    assert all(s.masks is not None for s in first)


def _tiny_phantom_config(phantom):
    import dataclasses

    fields = {f.name for f in dataclasses.fields(phantom.PhantomConfig)}
    small = {k: v for k, v in {"n_cases": 2, "n_days": 1, "n_slices": 4, "sizes": ((64, 64),)}.items() if k in fields}
    return phantom.PhantomConfig(**small)


def test_dataset_kinds_listed():
    assert set(DATASET_KINDS) == {"kaggle", "phantom", "uwmgi_derived", "isbi2012", "totalseg",
                                  "colin27", "pairs", "nifti"}
