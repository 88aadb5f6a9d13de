"""Image and mask files (PNG, TIFF) as arrays: reading, slicing, grayscale, checks."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gitract.data.record import DataError


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


def _list(folder: Path, pattern: str, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} folder does not exist")
    files = {p.stem: p for p in sorted(folder.glob(pattern)) if p.is_file()}
    if not files:
        raise DataError(f"{folder}: no {what} files match {pattern!r}")
    return files
