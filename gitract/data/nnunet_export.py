"""An nnU-Net v2 raw dataset of a dataset index: NIfTI volumes, ``dataset.json``, folds.

Each scan (a case-day) becomes one volume, ``imagesTr/<id>_0000.nii.gz`` and
``labelsTr/<id>.nii.gz``, with its true spacing: the pixel size of the record (the Kaggle
file names give it) and the slice thickness where the format gives one, else
:data:`DEFAULT_SLICE_THICKNESS` (3 mm, the UW-Madison protocol). Volumes are written with
nibabel in (column, row, slice) order, so nnU-Net's SimpleITK reader sees (slice, row,
column) arrays with spacing (thickness, row, column).

Overlapping classes (a pixel of both bowels, say) are kept exactly by region-based
training: the label of a pixel is the bit set of its classes (class ``c`` is bit ``c``,
so 3 classes give labels 0..7) and ``dataset.json`` declares one region per class, the
labels whose bit is set, with ``regions_class_order`` ``[1, 2, 4, ...]``. nnU-Net then
trains one sigmoid output per class, whose probabilities gitract reads back.

A split (a run's ``splits.json``) becomes ``splits_final.json``: fold ``k`` trains on the
scans of fold ``k``'s train cases and validates on those of its val cases, so nnU-Net's
folds are gitract's case-grouped ones. Cases in no fold's train or val (held-out test
cases) go to ``imagesTs``/``labelsTs``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from gitract.data.coco_export import split_parts
from gitract.data.index import DatasetIndex, ScanSource
from gitract.data.record import DataError, SliceStack
from gitract.utils.io import write_text_atomic
from gitract.utils.parallel import ParallelConfig, map_scans

__all__ = ["DEFAULT_SLICE_THICKNESS", "FILE_ENDING", "dataset_json", "decode_labels",
           "encode_labels", "export_nnunet", "identifier", "nnunet_folds", "read_volume",
           "write_scan", "write_volume"]

#: Slice distance in mm where the format gives none (UW-Madison scans: 3 mm slices).
DEFAULT_SLICE_THICKNESS = 3.0
FILE_ENDING = ".nii.gz"


def identifier(key: str) -> str:
    """nnU-Net's case identifier of a scan key (characters other than letters, digits,
    ``-`` and ``_`` become ``_``).

    >>> identifier("case12_day3")
    'case12_day3'
    """
    return re.sub(r"[^A-Za-z0-9_-]", "_", key)


def encode_labels(masks: NDArray[np.bool_]) -> NDArray[np.uint8]:
    """(..., C) class masks as one label map: the bit set of each pixel's classes.

    >>> encode_labels(np.array([[True, False], [True, True]]))
    array([1, 3], dtype=uint8)
    """
    if masks.shape[-1] > 8:
        raise ValueError(f"at most 8 classes fit a uint8 bit set, got {masks.shape[-1]}")
    bits = (1 << np.arange(masks.shape[-1])).astype(np.uint8)
    return (masks.astype(np.uint8) * bits).sum(axis=-1, dtype=np.uint8)


def decode_labels(labels: NDArray, n_classes: int) -> NDArray[np.bool_]:
    """The inverse of :func:`encode_labels`: (..., C) class masks."""
    labels = np.asarray(labels).astype(np.uint8)
    return (labels[..., None] >> np.arange(n_classes, dtype=np.uint8)) & 1 == 1


def dataset_json(classes: Sequence[str], n_training: int, *, name: str = "gitract",
                 description: str = "") -> dict:
    """nnU-Net's ``dataset.json`` with one region per class (see the module's note)."""
    n = len(classes)
    labels: dict[str, int | list[int]] = {"background": 0}
    for c, cls in enumerate(classes):
        labels[cls] = [v for v in range(1, 1 << n) if v >> c & 1]
    return {"channel_names": {"0": "MRI"}, "labels": labels,
            "regions_class_order": [1 << c for c in range(n)],
            "numTraining": int(n_training), "file_ending": FILE_ENDING, "name": name,
            "description": description or "gitract export: label = bit set of the classes"}


def _affine(stack: SliceStack) -> NDArray:
    rows, cols = (float(s) for s in stack.spacing)
    thickness = float(stack.slice_thickness or DEFAULT_SLICE_THICKNESS)
    return np.diag([cols, rows, thickness, 1.0])


def write_volume(array: NDArray, affine: NDArray, path: Path) -> Path:
    """Write an (S, H, W) array as a NIfTI volume in (W, H, S) order."""
    nib.save(nib.Nifti1Image(np.ascontiguousarray(np.transpose(array, (2, 1, 0))), affine),
             str(path))
    return path


def read_volume(path: str | Path) -> tuple[NDArray, tuple[float, float, float]]:
    """``(array (S, H, W), spacing (slice, row, column))`` of a volume written here."""
    img = nib.load(str(path))
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return np.transpose(np.asarray(img.dataobj), (2, 1, 0)), (zooms[2], zooms[1], zooms[0])


def write_scan(source: ScanSource, *, images: Path, labels: Path | None) -> dict:
    """Write one scan's image (and label map, where ``labels`` is given and the scan is
    labelled); returns its identifier, slices and spacing."""
    stack = source.read()
    ident = identifier(stack.key)
    affine = _affine(stack)
    write_volume(stack.image.astype(np.float32), affine, images / f"{ident}_0000{FILE_ENDING}")
    if labels is not None and stack.masks is not None:
        write_volume(encode_labels(stack.masks), affine, labels / f"{ident}{FILE_ENDING}")
    return {"identifier": ident, "slices": stack.n_slices,
            "spacing": [float(affine[2, 2]), float(affine[1, 1]), float(affine[0, 0])]}


def nnunet_folds(index: DatasetIndex, splits: Mapping, *, where: str = "splits"
                 ) -> list[dict[str, list[str]]]:
    """``splits_final.json``'s folds of a split: each fold's train and val scans by
    identifier (:func:`identifier` of the scan keys of its cases)."""
    folds = []
    for k in range(len(splits.get("folds") or [])):
        parts = split_parts(splits, fold=k, where=where)
        folds.append({p: [identifier(key) for key in index.keys_of(parts[p])]
                      for p in ("train", "val")})
    return folds


def export_nnunet(index: DatasetIndex, out_dir: str | Path, *, splits: Mapping | None = None,
                  dataset_id: int = 501, name: str = "gitract", where: str = "splits",
                  parallel: ParallelConfig | None = None) -> dict:
    """Write ``out_dir/Dataset<ID>_<name>/`` (an nnU-Net raw dataset) and, with
    ``splits``, ``splits_final.json`` beside its ``dataset.json``.

    Without ``splits`` every labelled scan is a training scan. With them, the scans of
    cases in some fold's train or val are training scans and the rest (test cases) go
    to ``imagesTs`` / ``labelsTs``.

    Returns
    -------
    dict
        ``folder``, ``training`` and ``test`` (scan counts), ``folds`` (0 without a split).

    Raises
    ------
    DataError
        Unlabelled data, a bad split, or cases of the split not in the data.
    """
    if not 1 <= dataset_id <= 999:
        raise ValueError(f"dataset_id must be in [1, 999], got {dataset_id}")
    if not index.labelled:
        raise DataError(f"{index.kind} data: no masks, nothing to train nnU-Net on")
    folds: list[dict[str, list[str]]] = []
    train_cases = set(index.cases())
    if splits is not None:
        folds_parts = [split_parts(splits, fold=k, where=where)  # every fold checked first
                       for k in range(len(splits.get("folds") or [None]))]
        missing = sorted({c for parts in folds_parts for p in parts.values() for c in p}
                         - train_cases)
        if missing:
            raise DataError(f"{where}: case(s) not in this {index.kind} data "
                            f"({', '.join(missing[:5])}); is it the split's dataset?")
        train_cases = {c for parts in folds_parts for p in ("train", "val") for c in parts[p]}
        folds = nnunet_folds(index, splits, where=where)
    keys = index.keys()
    idents = [identifier(k) for k in keys]
    if len(set(idents)) != len(idents):
        raise DataError(f"{index.kind} data: scan keys that differ only in punctuation "
                        "would share an nnU-Net identifier")
    folder = Path(out_dir) / f"Dataset{dataset_id:03d}_{name}"
    train_keys = [k for k in keys if index.ref(k).case in train_cases]
    test_keys = [k for k in keys if index.ref(k).case not in train_cases]
    for part, part_keys in (("Tr", train_keys), ("Ts", test_keys)):
        if not part_keys:
            continue
        images, labels = folder / f"images{part}", folder / f"labels{part}"
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        map_scans(write_scan, [index.source(k) for k in part_keys],
                  parallel=parallel or ParallelConfig(), desc=f"writing images{part}",
                  images=images, labels=labels)
    meta = dataset_json(index.classes, len(train_keys), name=name,
                        description=f"gitract export of {index.kind} data")
    write_text_atomic(folder / "dataset.json", json.dumps(meta, indent=2) + "\n")
    if folds:
        write_text_atomic(folder / "splits_final.json", json.dumps(folds, indent=2) + "\n")
    return {"folder": folder, "training": len(train_keys), "test": len(test_keys),
            "folds": len(folds)}
