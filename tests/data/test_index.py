"""The dataset index: scans listed without decoding, read one at a time, equal to the
eager readers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from gitract.data.index import index_dataset
from gitract.data.loaders import load_dataset
from gitract.data.phantom import PhantomConfig
from gitract.data.record import DataError


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    from gitract.data.phantom import write_phantom

    return write_phantom(tmp_path_factory.mktemp("ph") / "data",
                         PhantomConfig(n_cases=3, n_days=2, n_slices=6, sizes=((64, 80),)))


def _same(a, b):
    assert a.key == b.key and a.ids == b.ids and a.spacing == b.spacing
    assert a.slice_numbers == b.slice_numbers
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.masks, b.masks)


def test_kaggle_index_reads_what_the_eager_reader_reads(phantom_dir):
    index = index_dataset("kaggle", phantom_dir)
    stacks = load_dataset("kaggle", phantom_dir)
    assert index.keys() == [s.key for s in stacks]
    assert index.cases() == ["case1", "case2", "case3"]
    assert index.n_slices == 36 and index.max_shape == (80, 64)  # sizes are (width, height)
    for s in stacks:
        assert index.ref(s.key).n_slices == s.n_slices
        _same(index.read(s.key), s)
    # A scan's source is small: it carries paths and its own RLE strings, not pixels.
    assert len(pickle.dumps(index.source(stacks[0].key))) < 20_000


def test_decoded_scan_cache_is_reused_and_a_damaged_file_is_decoded_again(phantom_dir, tmp_path):
    index = index_dataset("kaggle", phantom_dir, cache_dir=tmp_path)
    key = index.keys()[0]
    first = index.read(key)
    files = list(tmp_path.rglob("*.npz"))
    assert [f.name for f in files] == [f"{key}.npz"]
    _same(index.read(key), first)
    files[0].write_bytes(b"not a zip")
    _same(index.read(key), first)


def test_restrict_keeps_cases_and_every_nth_slice(phantom_dir):
    index = index_dataset("kaggle", phantom_dir).restrict(max_cases=2, slice_step=2)
    assert index.cases() == ["case1", "case2"]
    assert [r.n_slices for r in index.scans] == [3] * 4
    full = load_dataset("kaggle", phantom_dir)[0]
    _same(index.read(full.key), full.subset(slice(None, None, 2)))
    assert index.fingerprint()["sha1"] != index_dataset("kaggle", phantom_dir).fingerprint()["sha1"]


def test_restrict_excludes_cases_and_case_days_before_max_cases(phantom_dir):
    full = index_dataset("kaggle", phantom_dir)
    day = full.scans[0].key  # case1's first day
    index = full.restrict(exclude=[day, "case2", "case9_day1"], max_cases=1)
    assert index.cases() == ["case1"] and day not in index.keys()
    assert [r.case for r in index.scans] == ["case1"]  # case1's other day is kept
    assert index.excluded == {day: (day,), "case2": tuple(full.keys_of(["case2"])),
                              "case9_day1": ()}
    assert len(index.excluded["case2"]) == 2
    assert index.fingerprint()["sha1"] != full.restrict(max_cases=1).fingerprint()["sha1"]
    assert full.restrict().excluded == {}


def test_bad_layout_is_one_error_naming_the_folder(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no scans found"):
        index_dataset("kaggle", tmp_path)
    with pytest.raises(ValueError, match="unknown option"):
        index_dataset("phantom", tmp_path / "p", nonsense=1)
    assert not (tmp_path / "p").exists()  # nothing written


def test_small_kinds_are_held_in_memory(uwmgi_dir):
    index = index_dataset("uwmgi_derived", uwmgi_dir)
    stacks = load_dataset("uwmgi_derived", uwmgi_dir)
    assert sorted(index.keys()) == sorted(s.key for s in stacks)
    _same(index.read(stacks[0].key), stacks[0])
