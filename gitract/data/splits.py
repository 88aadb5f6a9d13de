"""Case-grouped splits: held-out test cases plus cross-validation folds, saved as JSON.

Splits are made once per experiment over case (patient) ids, never over slices, saved as
``splits.json`` and reused by every model, so all models see the same train/val/test
cases.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gitract.data.record import SliceStack
from gitract.utils.io import atomic_path

__all__ = [
    "case_folds",
    "load_splits",
    "make_case_splits",
    "save_splits",
    "split_contiguous",
    "split_stacks",
    "validate_splits",
]


def _unique_cases(cases: Sequence[str]) -> list[str]:
    if isinstance(cases, str):
        raise TypeError(f"cases must be a sequence of case ids, got the string {cases!r}")
    return sorted({str(c) for c in cases})


def _n_test(n: int, n_test: int | None, test_fraction: float | None) -> int:
    if n_test is not None and test_fraction is not None:
        raise ValueError(
            f"give n_test or test_fraction, not both (got {n_test!r} and {test_fraction!r})"
        )
    if n_test is not None:
        if isinstance(n_test, bool) or not isinstance(n_test, (int, np.integer)) or n_test < 0:
            raise ValueError(f"n_test must be a non-negative int, got {n_test!r}")
        return int(n_test)
    frac = 0.2 if test_fraction is None else float(test_fraction)
    if not 0.0 <= frac < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    return 0 if frac == 0 else max(1, int(round(frac * n)))


def make_case_splits(
    cases: Sequence[str],
    *,
    n_folds: int = 5,
    n_test: int | None = None,
    test_fraction: float | None = None,
    val_fraction: float = 0.2,
    n_val: int | None = None,
    random_state: int = 0,
) -> dict:
    """Split case ids into held-out test cases and train/val folds over the rest.

    Parameters
    ----------
    cases : sequence of str
        Case ids; duplicates (e.g. one per stack or slice) are collapsed.
    n_folds : int
        Number of cross-validation folds (GroupKFold, shuffled with ``random_state``).
        0 or 1 means a single train/val split with ``val_fraction`` of the cases.
    n_test : int, optional
        Number of test cases (GroupShuffleSplit); 0 = no test set.
    test_fraction : float, optional
        Share of test cases instead of ``n_test`` (at least one case when > 0).
        Default when neither is given: 0.2.
    val_fraction : float
        Share of validation cases of the single split (``n_folds`` 0 or 1).
    n_val : int, optional
        Number of validation cases of the single split instead of ``val_fraction``
        (0: every non-test case trains).
    random_state : int
        Seed; the same seed and cases give the same splits.

    Returns
    -------
    dict
        ``{"test": [...], "folds": [{"train": [...], "val": [...]}, ...],
        "seed": int, "n_folds": int, "cases": [...]}``; lists are sorted, JSON-ready.

    Raises
    ------
    ValueError
        When there are too few cases for the requested test set and folds.

    Examples
    --------
    >>> s = make_case_splits([f"case{i}" for i in range(7)], n_folds=5, n_test=2)
    >>> len(s["test"]), len(s["folds"]), [len(f["val"]) for f in s["folds"]]
    (2, 5, [1, 1, 1, 1, 1])
    """
    from sklearn.model_selection import GroupKFold, GroupShuffleSplit

    all_cases = _unique_cases(cases)
    n = len(all_cases)
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 0:
        raise ValueError(f"n_folds must be a non-negative int, got {n_folds!r}")
    n_folds = int(n_folds)
    k_test = _n_test(n, n_test, test_fraction)
    if n_val is not None and (isinstance(n_val, bool) or not isinstance(n_val, (int, np.integer))
                              or n_val < 0):
        raise ValueError(f"n_val must be a non-negative int, got {n_val!r}")
    need = max(n_folds, 1 if n_val == 0 and n_folds <= 1 else 2)
    if n - k_test < need:
        raise ValueError(
            f"{n} cases cannot give {k_test} test cases and {n_folds} folds "
            f"(need at least {k_test + need} cases)"
        )
    seeds = np.random.SeedSequence(int(random_state)).generate_state(3)
    groups = np.array(all_cases)
    if k_test:
        gss = GroupShuffleSplit(n_splits=1, test_size=k_test, random_state=int(seeds[0]))
        rest_idx, test_idx = next(gss.split(groups, groups=groups))
        test = sorted(groups[test_idx].tolist())
        rest = groups[np.sort(rest_idx)]
    else:
        test, rest = [], groups
    folds = []
    if n_folds <= 1:
        if n_val is not None:
            if n_val >= len(rest):
                raise ValueError(f"n_val={n_val} leaves no training case among {len(rest)} "
                                 f"non-test cases")
            k_val = int(n_val)
        elif not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        else:
            k_val = min(len(rest) - 1, max(1, int(round(val_fraction * len(rest)))))
        if k_val:
            gss = GroupShuffleSplit(n_splits=1, test_size=k_val, random_state=int(seeds[1]))
            tr, va = next(gss.split(rest, groups=rest))
        else:
            tr, va = np.arange(len(rest)), np.arange(0)
        folds.append({"train": sorted(rest[tr].tolist()), "val": sorted(rest[va].tolist())})
    else:
        try:
            gkf = GroupKFold(n_splits=n_folds, shuffle=True, random_state=int(seeds[2]))
            order = rest
        except TypeError:  # scikit-learn < 1.6: no shuffle, so permute the groups
            gkf = GroupKFold(n_splits=n_folds)
            order = rest[np.random.default_rng(int(seeds[2])).permutation(len(rest))]
        for tr, va in gkf.split(order, groups=order):
            folds.append({"train": sorted(order[tr].tolist()), "val": sorted(order[va].tolist())})
    splits = {"test": test, "folds": folds, "seed": int(random_state),
              "n_folds": n_folds, "cases": all_cases}
    validate_splits(splits)
    return splits


def validate_splits(splits: dict, *, where: str = "splits") -> None:
    """Check structure and that no case lies on two sides of any split.

    Raises
    ------
    ValueError
        Naming ``where`` and the offending cases.
    """
    if not isinstance(splits, dict) or "test" not in splits or "folds" not in splits:
        raise ValueError(f"{where}: expected a dict with 'test' and 'folds', got {type(splits)}")
    test = set(splits["test"])
    for i, fold in enumerate(splits["folds"]):
        if set(fold) != {"train", "val"}:
            raise ValueError(f"{where}: fold {i} must have 'train' and 'val', got {sorted(fold)}")
        train, val = set(fold["train"]), set(fold["val"])
        for a, b, name in ((train, val, "train/val"), (train, test, "train/test"),
                           (val, test, "val/test")):
            if a & b:
                raise ValueError(f"{where}: fold {i} has cases on both {name}: {sorted(a & b)}")


def save_splits(splits: dict, path: str | Path) -> Path:
    """Write ``splits`` as JSON, atomically; returns the path."""
    validate_splits(splits)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(splits, indent=2, sort_keys=True) + "\n")
    return path


def load_splits(path: str | Path) -> dict:
    """Read splits written by :func:`save_splits` (validated).

    Raises
    ------
    ValueError
        When the file is missing, not JSON or not a valid split.
    """
    path = Path(path)
    try:
        splits = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read splits ({exc})") from None
    validate_splits(splits, where=str(path))
    return splits


def split_stacks(
    stacks: Sequence[SliceStack], case_list: Sequence[str], *, strict: bool = True
) -> list[SliceStack]:
    """The stacks whose case is in ``case_list`` (input order kept).

    Raises
    ------
    ValueError
        With ``strict``, when a listed case has no stack.
    """
    wanted = set(case_list)
    out = [s for s in stacks if s.case in wanted]
    if strict:
        missing = wanted - {s.case for s in out}
        if missing:
            raise ValueError(f"case_list names cases with no stack: {sorted(missing)}")
    return out


def split_contiguous(stack: SliceStack, n_parts: int) -> list[SliceStack]:
    """Cut one stack into ``n_parts`` contiguous sub-stacks, pseudo-cases ``<case>_part<i>``.

    For single-volume sets (ISBI EM) where a case-grouped split is otherwise impossible.
    Sizes differ by at most one slice; ``meta["pseudo_case_of"]`` keeps the parent case.

    Examples
    --------
    >>> st = SliceStack(np.zeros((5, 2, 2)), None, (), (1, 1), tuple("abcde"), "isbi")
    >>> [(p.case, p.n_slices) for p in split_contiguous(st, 2)]
    [('isbi_part0', 3), ('isbi_part1', 2)]
    """
    if isinstance(n_parts, bool) or not isinstance(n_parts, (int, np.integer)) or n_parts < 1:
        raise ValueError(f"n_parts must be a positive int, got {n_parts!r}")
    if n_parts > stack.n_slices:
        raise ValueError(f"n_parts={n_parts} exceeds the {stack.n_slices} slices of {stack.key}")
    parts = []
    for i, idx in enumerate(np.array_split(np.arange(stack.n_slices), n_parts)):
        sub = stack.subset(idx)
        sub.case = f"{stack.case}_part{i}"
        sub.meta["pseudo_case_of"] = stack.case
        parts.append(sub)
    return parts


def case_folds(
    cases: Sequence[str], *, n_folds: int, n_val: int = 1, random_state: int = 0
) -> list[tuple[list[str], list[str], list[str]]]:
    """Leave-cases-out folds ``(train, val, test)``: every case is a test case once.

    The outer split is ``gitract.data.splits.make_case_splits`` (GroupKFold over
    cases); inside each fold ``n_val`` of the remaining cases, drawn with the seed,
    validate the thresholds and the rest train.

    Examples
    --------
    >>> folds = case_folds([f"c{i}" for i in range(5)], n_folds=5)
    >>> sorted(c for _, _, test in folds for c in test)
    ['c0', 'c1', 'c2', 'c3', 'c4']
    >>> [len(t) for t, _, _ in folds]
    [3, 3, 3, 3, 3]
    """
    outer = make_case_splits(cases, n_folds=n_folds, n_test=0, random_state=random_state)
    gen = np.random.default_rng(random_state)
    folds = []
    for fold in outer["folds"]:
        rest = list(fold["train"])
        if n_val >= len(rest):
            raise ValueError(f"n_val={n_val} leaves no training case among {len(rest)} cases")
        val = sorted(gen.choice(rest, size=n_val, replace=False).tolist()) if n_val else []
        train = sorted(c for c in rest if c not in val)
        folds.append((train, val, sorted(fold["val"])))
    return folds


def nested_subsets(cases: Sequence[str], sizes: Sequence[int], *,
                   random_state: int = 0) -> dict[int, list[str]]:
    """Nested, seeded subsets of ``cases``: one permutation drawn with the seed, and the
    subset of size ``n`` is its first ``n`` cases, so every smaller subset lies inside every
    larger one (a learning curve then adds cases, never swaps them).

    Raises
    ------
    ValueError
        A size larger than the number of cases.

    Examples
    --------
    >>> subsets = nested_subsets([f"c{i}" for i in range(6)], [1, 2, 4], random_state=0)
    >>> [len(s) for s in subsets.values()]
    [1, 2, 4]
    >>> set(subsets[1]) <= set(subsets[2]) <= set(subsets[4])
    True
    """
    pool = _unique_cases(cases)
    too_big = [n for n in sizes if n > len(pool)]
    if too_big:
        raise ValueError(f"{too_big[0]} training cases asked, only {len(pool)} available")
    order = [pool[i] for i in np.random.default_rng(random_state).permutation(len(pool))]
    return {int(n): [c for c in pool if c in set(order[:n])] for n in sizes}


def choose_holdout(cases: Sequence[str], holdout, *, random_state: int = 0) -> list[str]:
    """The locked hold-out cases: ``holdout`` as case ids (each must be among ``cases``),
    or a fraction of ``cases`` drawn with the seed (at least one case, leaving at least
    one); None gives none.

    Examples
    --------
    >>> choose_holdout(["c1", "c2", "c3", "c4"], ["c3"])
    ['c3']
    >>> len(choose_holdout([f"c{i}" for i in range(10)], 0.2, random_state=1))
    2
    """
    pool = _unique_cases(cases)
    if holdout is None:
        return []
    if isinstance(holdout, float):
        k = min(len(pool) - 1, max(1, int(round(holdout * len(pool)))))
        if k < 1:
            raise ValueError(f"a hold-out fraction needs at least 2 cases, got {len(pool)}")
        rng = np.random.default_rng([int(random_state), 21])
        return sorted(rng.choice(pool, size=k, replace=False).tolist())
    unknown = [c for c in holdout if c not in set(pool)]
    if unknown:
        raise ValueError(f"hold-out case {unknown[0]!r} is not in the dataset")
    return sorted(set(holdout))
