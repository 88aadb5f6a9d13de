"""Case-grouped splits: grouping, determinism, JSON round trip, small case counts."""

from __future__ import annotations

import numpy as np
import pytest

from gitract.data.record import SliceStack
from gitract.data.splits import (
    load_splits,
    make_case_splits,
    save_splits,
    split_contiguous,
    split_stacks,
    validate_splits,
)

CASES7 = ["case11", "case107", "case110", "case114", "case117", "case118", "case121"]


def _check_grouped(splits, cases):
    test = set(splits["test"])
    for fold in splits["folds"]:
        train, val = set(fold["train"]), set(fold["val"])
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == set(cases)
    if len(splits["folds"]) > 1:  # each non-test case is validated exactly once
        vals = [c for f in splits["folds"] for c in f["val"]]
        assert sorted(vals) == sorted(set(cases) - test)


@pytest.mark.parametrize("n_cases, n_folds, n_test", [(7, 5, 2), (7, 3, 1), (7, 0, 2),
                                                      (7, 1, 0), (40, 5, None), (3, 2, 0)])
def test_splits_are_grouped(n_cases, n_folds, n_test):
    cases = CASES7 if n_cases == 7 else [f"case{i}" for i in range(n_cases)]
    per_slice = [c for c in cases for _ in range(4)]  # duplicates collapse to cases
    s = make_case_splits(per_slice, n_folds=n_folds, n_test=n_test, random_state=3)
    _check_grouped(s, cases)
    assert len(s["folds"]) == max(n_folds, 1)
    assert len(s["test"]) == (8 if n_test is None else n_test)
    assert s["seed"] == 3 and s["cases"] == sorted(cases)


def test_deterministic_and_seed_dependent():
    cases = [f"case{i}" for i in range(30)]
    a = make_case_splits(cases, n_folds=5, n_test=6, random_state=0)
    assert a == make_case_splits(list(reversed(cases)), n_folds=5, n_test=6, random_state=0)
    others = [make_case_splits(cases, n_folds=5, n_test=6, random_state=r) for r in (1, 2, 3)]
    assert any(o["test"] != a["test"] or o["folds"] != a["folds"] for o in others)


def test_save_load_identical(tmp_path):
    s = make_case_splits(CASES7, n_folds=5, n_test=2)
    path = save_splits(s, tmp_path / "run" / "splits.json")
    assert load_splits(path) == s
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left


@pytest.mark.parametrize("kw, match", [
    (dict(n_folds=5, n_test=3), "7 cases cannot give 3 test cases and 5 folds"),
    (dict(n_folds=7, n_test=1), "cannot give"),
    (dict(n_folds=5, n_test=2, test_fraction=0.2), "not both"),
    (dict(n_folds=-1), "n_folds"),
    (dict(n_folds=0, n_test=6), "cannot give"),
    (dict(test_fraction=1.5), "test_fraction"),
])
def test_impossible_requests_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        make_case_splits(CASES7, **kw)


def test_single_string_is_rejected():
    with pytest.raises(TypeError, match="string"):
        make_case_splits("case1")


def test_load_rejects_overlapping_or_bad_files(tmp_path):
    bad = {"test": ["a"], "folds": [{"train": ["a", "b"], "val": ["c"]}]}
    with pytest.raises(ValueError, match="train/test"):
        validate_splits(bad)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"x\.json"):
        load_splits(tmp_path / "x.json")


def _stack(case, n=3, day=None):
    return SliceStack(np.zeros((n, 4, 4), np.float32), None, (), (1.0, 1.0),
                      tuple(f"{case}_{i}" for i in range(n)), case, day=day)


def test_split_stacks_selects_by_case():
    stacks = [_stack("a", day="day1"), _stack("b"), _stack("a", day="day2")]
    assert [s.key for s in split_stacks(stacks, ["a"])] == ["a_day1", "a_day2"]
    with pytest.raises(ValueError, match="'z'"):
        split_stacks(stacks, ["a", "z"])
    assert len(split_stacks(stacks, ["a", "z"], strict=False)) == 2


def test_split_contiguous_pseudo_cases():
    parts = split_contiguous(_stack("isbi", n=10), 3)
    assert [p.case for p in parts] == ["isbi_part0", "isbi_part1", "isbi_part2"]
    assert [p.slice_numbers for p in parts] == [(0, 1, 2, 3), (4, 5, 6), (7, 8, 9)]
    assert parts[0].meta["pseudo_case_of"] == "isbi"
    s = make_case_splits([p.case for p in parts], n_folds=3, n_test=0)
    _check_grouped(s, [p.case for p in parts])
    with pytest.raises(ValueError, match="n_parts"):
        split_contiguous(_stack("x", n=2), 3)


@pytest.mark.real_data
def test_real_uwmgi_cases_split(uwmgi_dir):
    from gitract.data.record import parse_slice_id

    ids = [p.stem for p in sorted((uwmgi_dir / "images").glob("*.png"))]
    stacks = [_stack(case, n=1, day=day) for case, day, _ in map(parse_slice_id, ids)]
    assert len({st.case for st in stacks}) == 7
    s = make_case_splits([st.case for st in stacks], n_folds=5, n_test=2, random_state=0)
    _check_grouped(s, {st.case for st in stacks})
    for fold in s["folds"]:
        train = split_stacks(stacks, fold["train"])
        val = split_stacks(stacks, fold["val"])
        assert not {x.case for x in train} & {x.case for x in val}
        assert len(train) + len(val) + len(split_stacks(stacks, s["test"])) == len(stacks)


def test_n_val_counts_validation_cases_and_zero_test_cases_make_a_training_split():
    s = make_case_splits(CASES7, n_folds=1, n_test=0, n_val=2, random_state=3)
    assert s["test"] == [] and len(s["folds"][0]["val"]) == 2
    assert sorted(s["folds"][0]["train"] + s["folds"][0]["val"]) == sorted(CASES7)
    none = make_case_splits(CASES7[:2], n_folds=1, n_test=0, n_val=0)
    assert none["folds"][0] == {"train": sorted(CASES7[:2]), "val": []}
    with pytest.raises(ValueError, match="n_val=7 leaves no training case"):
        make_case_splits(CASES7, n_folds=1, n_test=0, n_val=7)
    with pytest.raises(ValueError, match="n_val must be a non-negative int"):
        make_case_splits(CASES7, n_folds=1, n_val=-1)
