"""Pairing image and mask files by stem and grouping them into slice stacks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gitract.data.pairs._files import (
    _as_slices,
    _check_image,
    _list,
    _natural_key,
    _read_array,
    _to_gray,
)
from gitract.data.pairs._masks import _label_masks, map_colours_to_masks
from gitract.data.record import DataError, SliceStack, parse_slice_id

IdParser = Callable[[str], tuple[str, "str | None", int]]


def read_image_mask_pairs(
    image_dir: str | Path,
    mask_dir: str | Path,
    *,
    classes: Sequence[str],
    colours: Mapping[str, Sequence[int]] | None = None,
    label_values: Mapping[str, int] | None = None,
    background_value: int | None = None,
    id_parser: IdParser | None = None,
    pattern: str = "*.png",
    mask_pattern: str | None = None,
    spacing: tuple[float, float] = (1.0, 1.0),
    slice_thickness: float | None = None,
    case: str | None = None,
    far_distance: float = 40.0,
    max_far_fraction: float = 0.05,
    meta: Mapping | None = None,
) -> list[SliceStack]:
    """Read a folder of images and a folder of masks with matching stems.

    Parameters
    ----------
    image_dir, mask_dir : path
        Folders of images and of masks; files are paired by stem.
    classes : sequence of str
        Mask channel names, in order.
    colours : mapping of str to (r, g, b), optional
        Colour-coded masks: each pixel goes to the nearest colour (see
        :func:`map_colours_to_masks`). Exactly one of ``colours``/``label_values``.
    label_values : mapping of str to int, optional
        Label-value masks: class ``c`` is ``mask == label_values[c]``.
    background_value : int, optional
        With ``label_values``: the only other value allowed (anything else is an
        error). None accepts every other value as background.
    id_parser : callable, optional
        ``stem -> (case, day or None, slice_number)`` used to group 2D files; default
        :func:`~gitract.data.record.parse_slice_id` when every stem parses.
    pattern, mask_pattern : str
        Glob patterns (``"*.png"``; ``"*.tif"`` for TIFF stacks); mask_pattern
        defaults to pattern.
    spacing : (float, float)
        Pixel spacing in mm recorded on every stack (files carry none).
    slice_thickness : float, optional
        Slice distance in mm, if known.
    case : str, optional
        Case id for 2D files whose stems do not parse (default: the folder name).
    far_distance, max_far_fraction : float
        Tolerance of colour masks (see :func:`map_colours_to_masks`).
    meta : mapping, optional
        Extra entries merged into every stack's ``meta``.

    Returns
    -------
    list of SliceStack
        Images ``(S, H, W)`` float32 as stored (not normalised), bool masks.

    Raises
    ------
    DataError
        Naming the file: unreadable file, image without mask or mask without image,
        image/mask size mismatch, constant or NaN image, unknown mask colours/values.
    """
    if (colours is None) == (label_values is None):
        raise ValueError("give exactly one of colours= or label_values=")
    classes = tuple(classes)
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    images = _list(image_dir, pattern, "image")
    masks = _list(mask_dir, mask_pattern or pattern, "mask")
    for stem, path in images.items():
        if stem not in masks:
            raise DataError(f"{path}: image has no mask in {mask_dir}")
    for stem, path in masks.items():
        if stem not in images:
            raise DataError(f"{path}: mask has no image in {image_dir}")

    stacks: list[SliceStack] = []
    singles: dict[str, tuple[NDArray, NDArray]] = {}
    base_meta = {"image_dir": str(image_dir), "mask_dir": str(mask_dir), **(meta or {})}
    for stem in sorted(images, key=_natural_key):
        ipath, mpath = images[stem], masks[stem]
        iarr, isamp = _read_array(ipath)
        iarr, is_stack = _as_slices(iarr, isamp, ipath)
        image = _to_gray(iarr, ipath)
        _check_image(image, ipath)
        marr, msamp = _read_array(mpath)
        marr, _ = _as_slices(marr, msamp, mpath)
        if marr.shape[:3] != image.shape:
            raise DataError(
                f"{mpath}: mask size {marr.shape[:3]} (slices, rows, cols) does not match "
                f"image {ipath.name} {image.shape}"
            )
        if colours is not None:
            if marr.ndim == 3:  # gray mask read against a colour map
                marr = np.repeat(marr[..., None], 3, axis=-1)
            mask = map_colours_to_masks(
                marr, colours, classes, far_distance=far_distance,
                max_far_fraction=max_far_fraction, where=str(mpath),
            )
        else:
            mask = _label_masks(marr, label_values, classes, background_value, str(mpath))
        if is_stack:
            stacks.append(SliceStack(
                image=image, masks=mask, classes=classes, spacing=spacing,
                ids=tuple(f"{stem}_slice_{i:04d}" for i in range(image.shape[0])),
                case=stem, source=ipath, slice_thickness=slice_thickness,
                meta={**base_meta, "file": str(ipath)},
            ))
        else:
            singles[stem] = (image[0], mask[0])
    if singles:
        stacks.extend(_group_singles(
            singles, images, classes=classes, id_parser=id_parser, spacing=spacing,
            slice_thickness=slice_thickness, case=case or image_dir.name,
            folder=image_dir, meta=base_meta,
        ))
    return stacks


def _parse_all(stems: list[str], id_parser: IdParser | None) -> dict | None:
    parser = id_parser or parse_slice_id
    parsed = {}
    for stem in stems:
        try:
            parsed[stem] = parser(stem)
        except DataError:
            if id_parser is not None:
                raise
            return None
    return parsed


def _group_singles(singles, paths, *, classes, id_parser, spacing, slice_thickness,
                   case, folder, meta) -> list[SliceStack]:
    parsed = _parse_all(list(singles), id_parser)
    groups: dict[tuple[str, str | None], list[tuple[int, str]]] = defaultdict(list)
    if parsed is None:
        stems = sorted(singles, key=_natural_key)
        numeric = all(s.isdigit() for s in stems)
        for i, stem in enumerate(stems):
            groups[(case, None)].append((int(stem) if numeric else i, stem))
    else:
        for stem, (c, day, number) in parsed.items():
            groups[(c, day)].append((int(number), stem))
    stacks = []
    for (c, day), members in sorted(groups.items(), key=lambda kv: _natural_key(f"{kv[0]}")):
        members.sort()
        numbers = [n for n, _ in members]
        if len(set(numbers)) != len(numbers):
            raise DataError(f"{folder}: duplicate slice numbers in {c} {day or ''}".rstrip())
        shapes = {singles[s][0].shape for _, s in members}
        if len(shapes) > 1:
            raise DataError(f"{folder}: slices of {c} {day or ''} differ in size: {sorted(shapes)}")
        stems = [s for _, s in members]
        ids = stems if parsed is not None else [f"{c}_slice_{n:04d}" for n in numbers]
        stacks.append(SliceStack(
            image=np.stack([singles[s][0] for s in stems]),
            masks=np.stack([singles[s][1] for s in stems]),
            classes=classes, spacing=spacing, ids=tuple(ids), case=c, day=day,
            slice_numbers=tuple(numbers), source=folder, slice_thickness=slice_thickness,
            meta={**meta, "files": [paths[s].name for s in stems]},
        ))
    return stacks
