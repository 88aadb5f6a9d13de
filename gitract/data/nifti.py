"""NIfTI volumes (CT/MRI + label map) read into :class:`~gitract.data.record.SliceStack`.

Both image and label are reoriented with :func:`nibabel.as_closest_canonical` (RAS+:
array axis 0 runs to the subject's right, 1 to anterior, 2 to superior). Slices are
taken along ``axis`` and, with the default ``orientation="radiological"``, shown the way
radiologists view them, like UW-Madison slices: an axial slice (``axis=2``) has rows
running anterior -> posterior and columns subject-right -> left; the general rule for
the two remaining axes ``(a, b)`` (a < b) is rows = ``b`` reversed, cols = ``a`` reversed.
``orientation="array"`` keeps rows = ``a``, cols = ``b`` unflipped. Slice numbers follow
the canonical slicing axis (inferior -> superior for axial).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gitract.constants import CLASSES
from gitract.data.record import DataError, SliceStack

__all__ = [
    "COLIN27_DEFAULT_CLASSES",
    "read_aal_names",
    "read_colin27",
    "read_nifti_volume",
    "read_totalseg_examples",
]

ClassSpec = Sequence[str] | Mapping[str, Sequence[str | int]] | None

#: Default Colin27 classes: deep grey nuclei and hippocampus, left and right merged.
COLIN27_DEFAULT_CLASSES: dict[str, list[str]] = {
    "caudate": ["Caudate_L", "Caudate_R"],
    "putamen": ["Putamen_L", "Putamen_R"],
    "thalamus": ["Thalamus_L", "Thalamus_R"],
    "hippocampus": ["Hippocampus_L", "Hippocampus_R"],
}

#: TotalSegmentator organ names mapped to the UW-Madison classes.
TOTALSEG_CLASSES: dict[str, list[str]] = {
    "large_bowel": ["colon"],
    "small_bowel": ["small_bowel"],
    "stomach": ["stomach"],
}


def _load_canonical(path: Path):
    import nibabel as nib

    try:
        img = nib.load(str(path))
        img = nib.as_closest_canonical(img)
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # any decoder/IO failure is bad input
        raise DataError(f"{path}: cannot read NIfTI file ({type(exc).__name__}: {exc})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{path}: expected a 3D volume, got shape {data.shape}")
    return img, data


def _resolve_classes(label_names: Mapping[int, str], classes: ClassSpec) -> dict[str, list[int]]:
    by_name: dict[str, list[int]] = {}
    for i, name in label_names.items():
        by_name.setdefault(str(name), []).append(int(i))
    if classes is None:
        return {str(label_names[i]): [int(i)] for i in sorted(label_names) if int(i) != 0}
    if isinstance(classes, str):
        raise TypeError(f"classes must be a sequence or mapping, got the string {classes!r}")
    if not isinstance(classes, Mapping):
        classes = {c: [c] for c in classes}
    out: dict[str, list[int]] = {}
    for cls, members in classes.items():
        if isinstance(members, (str, int, np.integer)):
            members = [members]
        ids: list[int] = []
        for m in members:
            if isinstance(m, (int, np.integer)):
                ids.append(int(m))
            elif m in by_name:
                ids.extend(by_name[m])
            else:
                raise ValueError(f"class {cls!r}: label {m!r} is not in label_names")
        out[str(cls)] = sorted(set(ids))
    return out


def _label_channels(labels: NDArray, groups: list[list[int]]) -> NDArray[np.bool_]:
    """(S, H, W) int labels -> (S, H, W, C) bool, channel c = label in groups[c]."""
    out = np.zeros((*labels.shape, len(groups)), dtype=bool)
    if labels.size and labels.min() >= 0 and labels.max() < 2**16:
        # A lookup table is much faster than np.isin on 1 mm brain volumes.
        lut = np.zeros((int(labels.max()) + 1, len(groups)), dtype=bool)
        for c, ids in enumerate(groups):
            lut[[i for i in ids if 0 <= i < lut.shape[0]], c] = True
        return lut[labels]
    for c, ids in enumerate(groups):
        out[..., c] = np.isin(labels, ids)
    return out


def _to_slices(vol: NDArray, axis: int, orientation: str) -> NDArray:
    slab = np.moveaxis(vol, axis, 0)
    if orientation == "radiological":
        slab = np.swapaxes(slab, 1, 2)[:, ::-1, ::-1]
    return np.ascontiguousarray(slab)


def read_nifti_volume(
    image_path: str | Path,
    label_path: str | Path | None,
    *,
    label_names: Mapping[int, str],
    classes: ClassSpec = None,
    axis: int = 2,
    case: str | None = None,
    orientation: str = "radiological",
    meta: Mapping | None = None,
) -> SliceStack:
    """Read a 3D image and its label map as one stack of 2D slices.

    Parameters
    ----------
    image_path : path
        3D NIfTI image (``.nii`` / ``.nii.gz``).
    label_path : path or None
        Integer label map on the same grid; None gives ``masks=None``.
    label_names : mapping of int to str
        Label id -> name (0 = background may be omitted).
    classes : sequence of str, or mapping of str to list of names/ids, optional
        Mask channels: label names (one channel each) or ``{class: [names or ids]}`` to
        merge labels (e.g. ``{"large_bowel": ["colon"]}``). Default: every named id but 0.
    axis : {0, 1, 2}
        Canonical (RAS) axis to slice along: 2 axial, 1 coronal, 0 sagittal.
    case : str, optional
        Case id (default: image file name without ``.nii[.gz]``).
    orientation : {"radiological", "array"}
        In-plane layout (module docstring).
    meta : mapping, optional
        Extra ``meta`` entries.

    Returns
    -------
    SliceStack
        ``image (S, H, W)`` float32 as stored (scaling applied), ``spacing`` = in-plane
        zooms of (rows, cols), ``slice_thickness`` = zoom along ``axis``.

    Raises
    ------
    DataError
        Naming the file: unreadable NIfTI, not 3D, NaN image, image/label shape
        mismatch, non-integer labels.
    """
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    if orientation not in ("radiological", "array"):
        raise ValueError(f"orientation must be 'radiological' or 'array', got {orientation!r}")
    import nibabel as nib

    image_path = Path(image_path)
    img, data = _load_canonical(image_path)
    data = np.asarray(data, dtype=np.float32)
    if np.isnan(data).any():
        raise DataError(f"{image_path}: image contains NaN")
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    a, b = [d for d in range(3) if d != axis]
    spacing = (zooms[b], zooms[a]) if orientation == "radiological" else (zooms[a], zooms[b])
    mapping = _resolve_classes(label_names, classes)
    masks = None
    if label_path is not None:
        label_path = Path(label_path)
        limg, labels = _load_canonical(label_path)
        if labels.shape != data.shape:
            raise DataError(
                f"{label_path}: label shape {labels.shape} does not match image "
                f"{image_path.name} {data.shape}"
            )
        if not np.allclose(limg.affine, img.affine, atol=1e-3):
            raise DataError(f"{label_path}: affine differs from image {image_path.name}")
        labels = np.asarray(labels)
        if not np.issubdtype(labels.dtype, np.integer):
            rounded = np.rint(labels)
            if not np.array_equal(rounded, labels):
                raise DataError(f"{label_path}: label map holds non-integer values")
            labels = rounded.astype(np.int64)
        masks = _label_channels(_to_slices(labels, axis, orientation), list(mapping.values()))
    image = _to_slices(data, axis, orientation)
    name = image_path.name.removesuffix(".gz").removesuffix(".nii")
    case = case or name
    codes = "".join(nib.aff2axcodes(img.affine))
    return SliceStack(
        image=image, masks=masks, classes=tuple(mapping), spacing=spacing,
        ids=tuple(f"{case}_slice_{i:04d}" for i in range(image.shape[0])), case=case,
        source=image_path, slice_thickness=zooms[axis],
        meta={"label_path": None if label_path is None else str(label_path),
              "class_label_ids": {k: list(v) for k, v in mapping.items()},
              "axis": axis, "orientation": orientation, "canonical_axcodes": codes,
              **(meta or {})},
    )


def read_totalseg_examples(root: str | Path, *, axis: int = 2) -> list[SliceStack]:
    """Read the TotalSegmentator abdominal CT and MR examples with the GI classes.

    Organs stomach, small_bowel and colon (-> ``large_bowel``) become
    :data:`gitract.constants.CLASSES`; names per label id come from
    ``labels_present.json``. The labels are TotalSegmentator model predictions, not
    manual annotation (``meta["labels_are_predictions"]``). Cases ``totalseg_ct`` and
    ``totalseg_mr``; 3 mm voxels. Axial slices (``axis=2``) give stacks of shape
    (30, 101, 122) for CT and (20, 91, 117) for MR.
    """
    root = Path(root)
    ref = root / "tests" / "reference_files"
    try:
        present = json.loads((root / "labels_present.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{root / 'labels_present.json'}: cannot read ({exc})") from None
    out = []
    for case, image, label, modality in (
        ("totalseg_ct", "example_ct_sm.nii.gz", "example_seg.nii.gz", "CT"),
        ("totalseg_mr", "example_mr_sm.nii.gz", "example_seg_mr.nii.gz", "MR"),
    ):
        names = {int(k): v["name"] for k, v in present[label]["labels"].items()}
        classes = {c: TOTALSEG_CLASSES[c] for c in CLASSES}
        out.append(read_nifti_volume(
            ref / image, ref / label, label_names=names, classes=classes, axis=axis,
            case=case, meta={"dataset": "totalseg", "modality": modality,
                             "task": present[label]["task"], "labels_are_predictions": True},
        ))
    return out


def read_aal_names(path: str | Path) -> dict[int, str]:
    """Parse ``aal.nii.txt`` (``id name code`` per line) into {id: name}."""
    path = Path(path)
    names = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        try:
            names[int(parts[0])] = parts[1]
        except (ValueError, IndexError):
            raise DataError(f"{path}:{n}: expected 'id name ...', got {line!r}") from None
    return names


def read_colin27(
    root: str | Path,
    *,
    classes: ClassSpec | str = None,
    brain_extracted: bool = False,
    axis: int = 2,
) -> list[SliceStack]:
    """Read the Colin27 T1 MRI with AAL labels as one stack (case ``colin27``).

    Parameters
    ----------
    root : path
        The ``colin27_aal`` folder.
    classes : None, "all", sequence or mapping
        None: :data:`COLIN27_DEFAULT_CLASSES` (caudate, putamen, thalamus, hippocampus;
        left + right merged), small and well-defined grey structures. ``"all"``: the 116
        AAL regions as channels (~0.8 GB of masks at 1 mm). Otherwise as in
        :func:`read_nifti_volume`.
    brain_extracted : bool
        Read ``ch2bet`` (skull-stripped) instead of ``ch2``.
    axis : {0, 1, 2}
        Slicing axis; axial (181, 217, 181) by default, 1 mm isotropic.
    """
    tdir = Path(root) / "usr" / "share" / "mricron" / "templates"
    names = read_aal_names(tdir / "aal.nii.txt")
    if classes is None:
        classes = COLIN27_DEFAULT_CLASSES
    elif isinstance(classes, str):
        if classes != "all":
            raise ValueError(f"classes must be None, 'all', a sequence or a mapping, got {classes!r}")
        classes = None
    image = tdir / ("ch2bet.nii.gz" if brain_extracted else "ch2.nii.gz")
    return [read_nifti_volume(
        image, tdir / "aal.nii.gz", label_names=names, classes=classes, axis=axis,
        case="colin27", meta={"dataset": "colin27", "atlas": "AAL (116 regions)",
                              "brain_extracted": brain_extracted},
    )]
