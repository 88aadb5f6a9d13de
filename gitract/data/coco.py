"""COCO records of gitract slices: one image per slice, one RLE annotation per class mask.

The conversion is pure (no files are read or written here): :func:`encode_mask` and
:func:`decode_mask` are COCO's compressed RLE through ``pycocotools.mask`` (column-major
runs, ``counts`` as a str so the record is JSON), :func:`mask_annotations` turns one
slice's ``(H, W, C)`` masks into annotations, :func:`stack_images` one stack's slices into
image entries, and :func:`coco_dataset` assembles a COCO dict. Category ids are 1-based
positions in the dataset's ``classes`` (the mask channels), so ground truth and
predictions of the same classes share them. ``gitract.data.coco_export`` writes the
files of a split.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gitract.data.record import SliceStack

__all__ = [
    "coco_categories",
    "coco_dataset",
    "decode_mask",
    "encode_mask",
    "mask_annotations",
    "slice_files",
    "stack_images",
]


def encode_mask(mask: NDArray[np.bool_]) -> dict:
    """COCO compressed RLE of one binary mask.

    Parameters
    ----------
    mask : ndarray of shape (H, W), dtype bool

    Returns
    -------
    dict
        ``{"size": [H, W], "counts": str}`` (``pycocotools.mask.encode`` with the counts
        decoded to ASCII so that the record is JSON).

    Examples
    --------
    >>> encode_mask(np.array([[0, 1], [1, 1]], dtype=bool))
    {'size': [2, 2], 'counts': '13'}
    """
    from pycocotools import mask as mask_utils

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must have shape (H, W), got {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: Mapping) -> NDArray[np.bool_]:
    """Inverse of :func:`encode_mask`: ``(H, W)`` bool from a compressed RLE record.

    Examples
    --------
    >>> decode_mask({"size": [2, 2], "counts": "13"}).astype(int).tolist()
    [[0, 1], [1, 1]]
    """
    from pycocotools import mask as mask_utils

    counts = rle["counts"]
    record = {"size": list(rle["size"]),
              "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(record).astype(bool)


def coco_categories(classes: Sequence[str], *, supercategory: str = "organ") -> list[dict]:
    """``[{"id": k + 1, "name": classes[k], "supercategory": ...}]`` in channel order.

    Examples
    --------
    >>> [c["id"] for c in coco_categories(("large_bowel", "small_bowel", "stomach"))]
    [1, 2, 3]
    """
    return [{"id": k + 1, "name": str(name), "supercategory": supercategory}
            for k, name in enumerate(classes)]


def mask_annotations(mask: NDArray[np.bool_], *, image_id: int,
                     proba: NDArray[np.floating] | None = None) -> list[dict]:
    """One annotation per non-empty class channel of one slice (no ``id`` yet).

    Parameters
    ----------
    mask : ndarray of shape (H, W, C), dtype bool
        Channel ``k`` becomes category ``k + 1``; an empty channel gives nothing.
    image_id : int
    proba : ndarray of shape (H, W, C), dtype float, optional
        Predicted probabilities: each annotation gets ``score``, the mean probability of
        its class inside its mask.

    Returns
    -------
    list of dict
        ``image_id``, ``category_id``, ``segmentation`` (compressed RLE), ``area`` (pixels),
        ``bbox`` ``[x, y, width, height]`` (columns first, as COCO), ``iscrowd`` 0 (an
        RLE of one object, not a crowd region: COCOeval matches it like any object).
    """
    from pycocotools import mask as mask_utils

    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must have shape (H, W, C), got {mask.shape}")
    if proba is not None and np.shape(proba) != mask.shape:
        raise ValueError(f"proba shape {np.shape(proba)} does not match mask {mask.shape}")
    out = []
    for k in range(mask.shape[2]):
        channel = mask[:, :, k]
        if not channel.any():
            continue
        rle = mask_utils.encode(np.asfortranarray(channel, dtype=np.uint8))
        ann = {"image_id": int(image_id), "category_id": k + 1,
               "segmentation": {"size": [int(s) for s in rle["size"]],
                                "counts": rle["counts"].decode("ascii")},
               "area": int(mask_utils.area(rle)),
               "bbox": [float(v) for v in mask_utils.toBbox(rle)],
               "iscrowd": 0}
        if proba is not None:
            ann["score"] = float(np.mean(proba[:, :, k][channel], dtype=np.float64))
        out.append(ann)
    return out


def _relative(path: str | Path, root: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix()


def slice_files(stack: SliceStack, root: str | Path) -> list[tuple[str, int | None]]:
    """``(file name relative to root, frame or None)`` of every slice of ``stack``.

    One file per slice (Kaggle layout: ``meta["paths"]``; 2D image/mask pairs:
    ``meta["image_dir"]`` + ``meta["files"]``) gives frame None; a stack stored in one
    file (TIFF stack, NIfTI volume) gives that file and the slice's position in it.
    """
    root = Path(root)
    meta = stack.meta
    if "paths" in meta:
        names = [_relative(p, root) for p in meta["paths"]]
    elif "files" in meta and "image_dir" in meta:
        names = [_relative(Path(meta["image_dir"]) / f, root) for f in meta["files"]]
    else:
        single = meta.get("file", stack.source)
        if single is None:
            raise ValueError(f"stack {stack.key}: no file recorded for its slices")
        return [(_relative(single, root), int(n)) for n in stack.slice_numbers]
    if len(names) != stack.n_slices:
        raise ValueError(f"stack {stack.key}: {len(names)} files for {stack.n_slices} slices")
    return [(name, None) for name in names]


def stack_images(stack: SliceStack, *, first_id: int, root: str | Path) -> list[dict]:
    """COCO image entries of a stack's slices, ids ``first_id, first_id + 1, ...``.

    Each entry has ``id``, ``file_name`` (relative to ``root``), ``height``, ``width``,
    ``case``, ``day`` (None when the data have no days), ``slice`` (the slice number),
    ``slice_id`` (gitract's id, e.g. ``case1_day0_slice_0001``), ``spacing`` (row, col
    mm) and ``frame`` (position in a multi-slice file) where the file holds several.
    """
    h, w = stack.shape
    images = []
    for i, ((name, frame), number) in enumerate(
            zip(slice_files(stack, root), stack.slice_numbers, strict=True)):
        entry = {"id": int(first_id) + i, "file_name": name, "height": h, "width": w,
                 "case": stack.case, "day": stack.day, "slice": int(number),
                 "slice_id": stack.ids[i], "spacing": list(stack.spacing)}
        if frame is not None:
            entry["frame"] = frame
        images.append(entry)
    return images


def coco_dataset(images: Sequence[dict], annotations: Sequence[dict],
                 classes: Sequence[str], *, info: Mapping | None = None,
                 supercategory: str = "organ") -> dict:
    """A COCO dict: ``info``, ``images``, ``annotations`` (ids 1..n in order given),
    ``categories``."""
    anns = [{"id": i + 1, **a} for i, a in enumerate(annotations)]
    return {"info": dict(info or {}), "licenses": [], "images": list(images),
            "annotations": anns,
            "categories": coco_categories(classes, supercategory=supercategory)}
