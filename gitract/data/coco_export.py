"""COCO JSON files of a case split: ``train.json``, ``val.json``, ``test.json`` of a fold.

:func:`export_coco` reads the scans of a :class:`~gitract.data.index.DatasetIndex` one
at a time (memory is one scan plus the RLE strings) and writes, for each part of the
fold that holds cases, a COCO file whose images are that part's slices and whose
annotations are their non-empty class masks (:mod:`gitract.data.coco`). Image ids are
positions in the whole index (:func:`image_id_offsets`): the same data folder gives the
same ids whatever the split, so predictions written for it (``gitract export
coco-pred``) load against any part with ``COCO.loadRes``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from gitract.constants import CLASSES
from gitract.data.coco import coco_dataset, mask_annotations, stack_images
from gitract.data.index import DatasetIndex, ScanSource, natural_key
from gitract.data.record import DataError
from gitract.utils.io import atomic_path
from gitract.utils.parallel import ParallelConfig, map_scans

__all__ = [
    "SPLIT_PARTS",
    "export_coco",
    "image_id_offsets",
    "read_split_file",
    "scan_records",
    "split_parts",
    "write_json",
]

#: The parts of a fold, in the order they are written.
SPLIT_PARTS: tuple[str, ...] = ("train", "val", "test")


def read_split_file(path: str | Path) -> dict:
    """The JSON of a ``splits.json``; a :class:`DataError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (a run folder's splits.json is written by "
                        "gitract compare and the track commands)")
    try:
        splits = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the split ({exc})") from None
    if not isinstance(splits, dict):
        raise DataError(f"{path}: expected a JSON object with 'folds', got "
                        f"{type(splits).__name__}")
    return splits


def split_parts(splits: Mapping, *, fold: int = 0, where: str = "splits") -> dict[str, list[str]]:
    """``{"train": cases, "val": cases, "test": cases}`` of one fold.

    Reads both layouts of a split: a run folder's (each fold has its own ``test``) and
    :func:`gitract.data.splits.make_case_splits`'s (one top-level ``test``).

    Raises
    ------
    DataError
        Naming ``where``: no folds, ``fold`` out of range, a part that is not a list of
        case ids, or a case in two parts.

    Examples
    --------
    >>> s = {"folds": [{"train": ["c1", "c2"], "val": ["c3"], "test": ["c4"]}]}
    >>> split_parts(s, fold=0)
    {'train': ['c1', 'c2'], 'val': ['c3'], 'test': ['c4']}
    """
    folds = splits.get("folds")
    if not isinstance(folds, list) or not folds:
        raise DataError(f"{where}: no 'folds' list; not a split file")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < len(folds):
        raise DataError(f"{where}: no fold {fold!r} (the split has folds 0 to {len(folds) - 1})")
    entry = folds[fold]
    if not isinstance(entry, Mapping):
        raise DataError(f"{where}: folds[{fold}] is not an object")
    parts = {"train": entry.get("train"), "val": entry.get("val"),
             "test": entry.get("test", splits.get("test", []))}
    seen: dict[str, str] = {}
    for name, cases in parts.items():
        if not isinstance(cases, list) or not all(isinstance(c, str) for c in cases):
            raise DataError(f"{where}: folds[{fold}].{name} must be a list of case ids, got "
                            f"{cases!r}")
        for c in cases:
            if c in seen:
                raise DataError(f"{where}: case {c!r} is in both {seen[c]} and {name} of "
                                f"fold {fold}")
            seen[c] = name
    return {name: list(cases) for name, cases in parts.items()}


def image_id_offsets(index: DatasetIndex) -> dict[str, int]:
    """The COCO id of each scan's first slice: 1 + the slices of the scans before it.

    Examples
    --------
    >>> from gitract.data.index import _memory_index
    >>> from gitract.data.record import SliceStack
    >>> import numpy as np
    >>> st = [SliceStack(np.ones((n, 2, 2)), None, (), (1, 1), [f"{c}_{i}" for i in range(n)], c)
    ...       for c, n in (("case2", 3), ("case10", 2))]
    >>> image_id_offsets(_memory_index("pairs", st))
    {'case2': 1, 'case10': 4}
    """
    offsets, start = {}, 1
    for ref in index.scans:
        offsets[ref.key] = start
        start += ref.n_slices
    return offsets


def scan_records(item: tuple[ScanSource, int], *, root: str) -> tuple[list[dict], list[dict]]:
    """``(images, annotations)`` of one scan (``item`` = its source and first image id);
    reads that scan only. Unlabelled scans give images and no annotations."""
    source, first_id = item
    stack = source.read()
    images = stack_images(stack, first_id=first_id, root=root)
    annotations = []
    if stack.masks is not None:
        for i in range(stack.n_slices):
            annotations.extend(mask_annotations(stack.masks[i], image_id=first_id + i))
    return images, annotations


def write_json(obj, path: str | Path) -> Path:
    """Write ``obj`` as compact JSON, atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, separators=(",", ":")) + "\n")
    return path


def export_coco(
    index: DatasetIndex,
    splits: Mapping,
    out_dir: str | Path,
    *,
    root: str | Path,
    fold: int = 0,
    parallel: ParallelConfig | None = None,
    info: Mapping | None = None,
    where: str = "splits",
) -> dict[str, dict]:
    """Write ``out_dir/<part>.json`` for each part of ``fold`` that holds cases.

    Parameters
    ----------
    index : DatasetIndex
        The data the split was made on; scans of cases in no part are left out.
    splits : mapping
        A split (``splits.json`` content); see :func:`split_parts`.
    out_dir : path
        Folder for the files (created); each file is written atomically.
    root : path
        Image ``file_name`` values are relative to it (the data folder).
    fold : int
    parallel : ParallelConfig, optional
        Where the per-scan conversions run (default: in this process).
    info : mapping, optional
        Extra entries of each file's ``info``.
    where : str
        The split's name in error messages (its file).

    Returns
    -------
    dict
        ``{part: {"path", "cases", "images", "annotations"}}`` of the files written, and
        ``"skipped": [parts without cases]``.

    Raises
    ------
    DataError
        A bad split (:func:`split_parts`) or cases of the split that are not in the data.
    """
    parts = split_parts(splits, fold=fold, where=where)
    known = set(index.cases())
    missing = sorted({c for cases in parts.values() for c in cases} - known, key=natural_key)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(f"{root}: {len(missing)} case(s) of {where} are not in this "
                        f"{index.kind} data ({shown}); is it the dataset the split was made on?")
    offsets = image_id_offsets(index)
    part_of = {c: name for name, cases in parts.items() for c in cases}
    keys = [k for k in index.keys() if index.ref(k).case in part_of]
    records = map_scans(scan_records, [(index.source(k), offsets[k]) for k in keys],
                        parallel=parallel or ParallelConfig(), desc="exporting scans", root=str(root))
    images: dict[str, list[dict]] = {p: [] for p in SPLIT_PARTS}
    annotations: dict[str, list[dict]] = {p: [] for p in SPLIT_PARTS}
    for key, (imgs, anns) in zip(keys, records, strict=True):
        part = part_of[index.ref(key).case]
        images[part].extend(imgs)
        annotations[part].extend(anns)
    supercategory = "gi_tract" if tuple(index.classes) == CLASSES else index.kind
    written: dict[str, dict] = {"skipped": []}
    for part in SPLIT_PARTS:
        if not parts[part]:
            written["skipped"].append(part)
            continue
        meta = {"description": f"gitract COCO export: {index.kind} data, fold {fold} {part}",
                "data_root": str(Path(root).resolve()), "split": where, "fold": fold,
                "part": part, "cases": sorted(parts[part], key=natural_key),
                **dict(info or {})}
        data = coco_dataset(images[part], annotations[part], index.classes, info=meta,
                            supercategory=supercategory)
        path = write_json(data, Path(out_dir) / f"{part}.json")
        written[part] = {"path": path, "cases": len(parts[part]), "images": len(images[part]),
                         "annotations": len(annotations[part])}
    return written
