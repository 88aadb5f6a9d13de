"""Readers for folders of image/mask pairs (PNG slices or multi-page TIFF stacks).

A pair is an image file and a mask file with the same stem in two folders. Masks hold
either integer label values (``label_values``) or colours (``colours``); colour masks
are mapped pixel by pixel to the *nearest* reference colour, because resampled masks
(such as the derived UW-Madison set) have blurred, interpolated edges.

Grouping into :class:`~gitract.data.record.SliceStack` records:

- a multi-page file (TIFF stack, ``(S, H, W)``) is one stack of its own, case = file stem;
- 2D files whose stems parse as ``caseN_dayM_slice_NNNN`` (or through ``id_parser``)
  are grouped by case and day and sorted by slice number;
- all other 2D files of the folder form one stack (case = ``case`` or the folder
  name), in natural order of their stems (``2`` before ``10``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gitract.constants import CLASSES, UWMGI_DERIVED_COLOURS
from gitract.data.record import DataError, SliceStack, parse_slice_id

__all__ = [
    "map_colours_to_masks",
    "read_image_mask_pairs",
    "read_isbi2012",
    "read_uwmgi_derived",
]

#: Approximate in-plane spacing of the derived UW-Madison slices: the originals were
#: mostly 266 px at 1.5 mm and were upscaled to 512 px, so 266 * 1.5 / 512 mm.
UWMGI_DERIVED_SPACING_MM: float = 266 * 1.5 / 512

IdParser = Callable[[str], tuple[str, "str | None", int]]


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _read_array(path: Path) -> tuple[NDArray, bool]:
    """Read a PNG/TIFF file; return (array, has_colour_samples)."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                arr = series.asarray()
                has_samples = "S" in series.axes
        else:
            from PIL import Image

            with Image.open(path) as img:
                if img.mode == "P":
                    img = img.convert("RGB")
                arr = np.asarray(img)
            has_samples = arr.ndim == 3
    except Exception as exc:  # noqa: BLE001 - any decoder failure is bad input
        raise DataError(f"{path}: cannot read image file ({type(exc).__name__}: {exc})") from None
    return arr, has_samples


def _as_slices(arr: NDArray, has_samples: bool, path: Path) -> tuple[NDArray, bool]:
    """Normalise to (S, H, W) or (S, H, W, K); return (array, is_stack_file)."""
    spatial = arr.ndim - (1 if has_samples else 0)
    if spatial == 2:
        return arr[None], False
    if spatial == 3:
        return arr, True
    raise DataError(f"{path}: expected a 2D image or a 3D stack, got array of shape {arr.shape}")


def _to_gray(arr: NDArray, path: Path) -> NDArray[np.float32]:
    """(S, H, W[, K]) -> (S, H, W) float32; colour channels must be equal."""
    if arr.ndim == 4:
        if arr.shape[-1] not in (1, 2, 3, 4):
            raise DataError(f"{path}: unexpected number of channels {arr.shape[-1]}")
        if arr.shape[-1] in (2, 4):  # drop alpha
            arr = arr[..., :-1]
        if arr.shape[-1] == 3 and not (
            np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])
        ):
            raise DataError(f"{path}: colour image with unequal channels; grayscale expected")
        arr = arr[..., 0]
    return arr.astype(np.float32)


def _check_image(image: NDArray[np.float32], path: Path) -> None:
    if np.isnan(image).any():
        raise DataError(f"{path}: image contains NaN")
    flat = image.reshape(image.shape[0], -1)
    constant = np.flatnonzero(flat.min(axis=1) == flat.max(axis=1))
    if constant.size:
        raise DataError(
            f"{path}: image slice {int(constant[0])} is constant "
            f"(value {float(flat[constant[0], 0])}); empty or corrupt file?"
        )


def map_colours_to_masks(
    rgb: NDArray,
    colours: Mapping[str, Sequence[int]],
    classes: Sequence[str],
    *,
    far_distance: float = 40.0,
    max_far_fraction: float = 0.05,
    where: str = "mask",
) -> NDArray[np.bool_]:
    """Map every pixel of a colour mask to the nearest reference colour.

    Parameters
    ----------
    rgb : ndarray of shape (..., 3), integer or float
        Colour mask (extra channels after the third, e.g. alpha, are ignored).
    colours : mapping of str to (r, g, b)
        Reference colours of every class and of ``"background"`` (default black).
        Colours of names not in ``classes`` are known but give no channel.
    classes : sequence of str
        Classes to return, in channel order; each needs a colour.
    far_distance : float
        Euclidean RGB distance beyond which a pixel counts as "far from every colour".
    max_far_fraction : float
        Largest tolerated share of far pixels (interpolated edges give ~0.1-2 %).
    where : str
        Name used in error messages (the file).

    Returns
    -------
    masks : ndarray of shape (..., C), dtype bool
        One channel per class; channels never overlap.

    Raises
    ------
    DataError
        When too many pixels are far from every reference colour.

    Examples
    --------
    >>> m = np.array([[[250, 5, 0], [0, 0, 0]]], dtype=np.uint8)
    >>> map_colours_to_masks(m, {"stomach": (255, 0, 0)}, ["stomach"])[..., 0].tolist()
    [[True, False]]
    """
    missing = [c for c in classes if c not in colours]
    if missing:
        raise ValueError(f"colours has no entry for classes {missing}")
    names = list(dict.fromkeys([*colours, "background"]))
    ref = np.array(
        [colours.get(n, (0, 0, 0)) for n in names], dtype=np.float32
    ).reshape(len(names), 3)
    rgb = np.asarray(rgb)
    if rgb.shape[-1] < 3:
        raise DataError(f"{where}: colour mask expected (..., 3), got shape {rgb.shape}")
    pix = rgb[..., :3].reshape(-1, 3)
    if np.issubdtype(pix.dtype, np.integer) and pix.size and pix.min() >= 0 and pix.max() < 256:
        # Blurred masks hold a few thousand distinct colours: measure those, not every pixel.
        # Most pixels hold a reference colour exactly; only the others need distances.
        packed = (pix[:, 0].astype(np.int32) << 16) | (pix[:, 1].astype(np.int32) << 8) | pix[:, 2]
        ref_packed = (ref[:, 0].astype(np.int32) << 16) | (ref[:, 1].astype(np.int32) << 8) | ref[
            :, 2].astype(np.int32)
        nearest = np.full(packed.shape, -1, dtype=np.int64)
        for k in range(len(names) - 1, -1, -1):  # first listed wins on duplicate colours
            nearest[packed == ref_packed[k]] = k
        rest = np.flatnonzero(nearest < 0)
        far = np.zeros(packed.shape, dtype=bool)
        if rest.size:
            uniq, inverse = np.unique(packed[rest], return_inverse=True)
            cand = np.stack([uniq >> 16, (uniq >> 8) & 255, uniq & 255], axis=1).astype(np.float32)
            d2 = ((cand[:, None, :] - ref[None, :, :]) ** 2).sum(axis=-1)
            nearest[rest] = d2.argmin(axis=1)[inverse]
            far[rest] = (np.sqrt(d2.min(axis=1)) > far_distance)[inverse]
    else:
        d2 = ((pix.astype(np.float32)[:, None, :] - ref[None, :, :]) ** 2).sum(axis=-1)
        nearest = d2.argmin(axis=1)
        far = np.sqrt(d2.min(axis=1)) > far_distance
    if pix.shape[0] and far.mean() > max_far_fraction:
        odd = pix[far][0].astype(int).tolist()
        raise DataError(
            f"{where}: {far.mean():.1%} of pixels are more than {far_distance} RGB units "
            f"from every reference colour (e.g. {odd}); unknown colour map?"
        )
    out = np.stack([nearest == names.index(c) for c in classes], axis=-1)
    return out.reshape(*rgb.shape[:-1], len(classes))


def _label_masks(
    arr: NDArray,
    label_values: Mapping[str, int],
    classes: Sequence[str],
    background_value: int | None,
    where: str,
) -> NDArray[np.bool_]:
    if arr.ndim == 4:  # gray stored as RGB(A)
        arr = _to_gray(arr, Path(where))
    missing = [c for c in classes if c not in label_values]
    if missing:
        raise ValueError(f"label_values has no entry for classes {missing}")
    if background_value is not None:
        allowed = np.array([*label_values.values(), background_value])
        unknown = ~np.isin(arr, allowed)
        if unknown.any():
            raise DataError(
                f"{where}: mask holds values {np.unique(arr[unknown])[:10].tolist()} outside "
                f"the label values {sorted(allowed.tolist())}"
            )
    return np.stack([arr == label_values[c] for c in classes], axis=-1)


def _list(folder: Path, pattern: str, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} folder does not exist")
    files = {p.stem: p for p in sorted(folder.glob(pattern)) if p.is_file()}
    if not files:
        raise DataError(f"{folder}: no {what} files match {pattern!r}")
    return files


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


def read_uwmgi_derived(root: str | Path) -> list[SliceStack]:
    """Read the derived UW-Madison set (``root/images``, ``root/masks``, colour masks).

    Upscaled 512x512 8-bit copies of competition slices: stacks are grouped by case and
    day, but hold only the few sampled slices (``slice_numbers`` are not contiguous).
    The pixel spacing is *approximate* (:data:`UWMGI_DERIVED_SPACING_MM`, ~0.78 mm)
    because the original size per slice is unknown; ``meta["spacing_approximate"]``
    is True. Slice thickness is the competition's 3 mm. Channels never overlap here
    (a colour per pixel), unlike the original RLE masks.

    Parameters
    ----------
    root : path
        Folder holding ``images/`` and ``masks/``.

    Returns
    -------
    list of SliceStack
        One per case-day, classes :data:`gitract.constants.CLASSES`.
    """
    root = Path(root)
    s = UWMGI_DERIVED_SPACING_MM
    return read_image_mask_pairs(
        root / "images", root / "masks", classes=CLASSES, colours=UWMGI_DERIVED_COLOURS,
        spacing=(s, s), slice_thickness=3.0,
        meta={
            "dataset": "uwmgi_derived",
            "spacing_approximate": True,
            "spacing_note": "originals ~266 px at 1.5 mm upscaled to 512 px; true size unknown",
            "intensity": "8-bit rescaled; original 16-bit intensities lost",
            "sparse_slices": True,
        },
    )


def read_isbi2012(root: str | Path, *, n_parts: int = 1) -> list[SliceStack]:
    """Read the ISBI 2012 EM training stack (``root/train/image``, ``root/train/label``).

    30 slices of 512x512 8-bit TEM; class ``"membrane"`` is label value 0 (255 is cell
    interior). Spacing 4 nm in-plane (0.004 mm) and 50 nm sections (0.05 mm), from the
    challenge description. The set is a single volume, i.e. one case ``"isbi"``; with
    ``n_parts > 1`` it is cut into contiguous sub-stacks ``isbi_part0..`` that act as
    pseudo-cases so that case-grouped splits work (neighbouring sections stay
    correlated across part borders: treat scores as optimistic).

    Parameters
    ----------
    root : path
        The ``isbi2012_em`` folder.
    n_parts : int
        Number of contiguous pseudo-cases (1 = the whole stack).

    Returns
    -------
    list of SliceStack
    """
    from gitract.data.splits import split_contiguous

    root = Path(root)
    stacks = read_image_mask_pairs(
        root / "train" / "image", root / "train" / "label", classes=("membrane",),
        label_values={"membrane": 0}, background_value=255, spacing=(0.004, 0.004),
        slice_thickness=0.05, case="isbi",
        meta={"dataset": "isbi2012", "label_note": "membrane = label value 0"},
    )
    if n_parts == 1:
        return stacks
    return [part for st in stacks for part in split_contiguous(st, n_parts)]
