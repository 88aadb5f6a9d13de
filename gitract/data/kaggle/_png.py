"""16-bit grayscale PNG slices: reading (with checks) and atomic writing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gitract.data.record import DataError
from gitract.utils.io import atomic_path

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The end chunk's type and CRC; searched for in the last ``_TAIL`` bytes of a file.
_IEND, _TAIL = b"IEND\xaeB`\x82", 64


def _png_header(path: Path, *, end: bool = False) -> tuple[int, int, int, int]:
    """``(width, height, bit depth, colour type)`` from a PNG's signature and IHDR chunk;
    ``end``: the file must also end with the IEND chunk (not cut short)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
            tail = b""
            if end and len(head) == 26:
                fh.seek(max(26, fh.seek(0, os.SEEK_END) - _TAIL))
                tail = fh.read(_TAIL)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file: {exc}") from None
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DataError(f"{path}: not a PNG file (bad signature or header)")
    if end and _IEND not in tail:
        raise DataError(f"{path}: truncated PNG (the file does not end with its IEND chunk)")
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return width, height, head[24], head[25]


def check_kaggle_png(path: str | Path, *, expected_shape: tuple[int, int] | None = None
                     ) -> None:
    """Check a slice's PNG file without decoding it (its first 26 and last 64 bytes): a
    PNG, 16-bit grayscale, of ``expected_shape`` (height, width) where given, not cut
    short (it ends with its IEND chunk).

    Raises
    ------
    DataError
        Naming the file, as :func:`read_kaggle_png` would for the same problem. Damage
        inside the pixel data (the header and the end intact) or a constant image shows
        only when the slice is decoded.
    """
    path = Path(path)
    width, height, bit_depth, colour_type = _png_header(path, end=True)
    if bit_depth != 16 or colour_type != 0:
        raise DataError(
            f"{path}: expected a 16-bit grayscale PNG, got bit depth {bit_depth}, "
            f"colour type {colour_type}"
        )
    if expected_shape is not None and (height, width) != tuple(expected_shape):
        raise DataError(
            f"{path}: image is {width}x{height} (WxH) but the file "
            f"name says {expected_shape[1]}x{expected_shape[0]}"
        )


def read_kaggle_png(
    path: str | Path, *, expected_shape: tuple[int, int] | None = None
) -> NDArray[np.uint16]:
    """Read one slice, keeping its 16-bit values.

    Parameters
    ----------
    path : path
        A 16-bit grayscale PNG.
    expected_shape : (int, int), optional
        (height, width) the image must have (from its file name).

    Returns
    -------
    ndarray of shape (H, W), dtype uint16

    Raises
    ------
    DataError
        Naming the file: unreadable or corrupt, not 16-bit grayscale (e.g. 8-bit), a
        shape other than ``expected_shape``, or a constant image. (A 16-bit integer PNG
        cannot hold NaN, so the bit-depth check also excludes non-finite values.)
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    width, height, bit_depth, colour_type = _png_header(path)
    if bit_depth != 16 or colour_type != 0:
        raise DataError(
            f"{path}: expected a 16-bit grayscale PNG, got bit depth {bit_depth}, "
            f"colour type {colour_type}"
        )
    try:
        with Image.open(path) as im:
            im.load()
            array = np.asarray(im)
    except (OSError, SyntaxError, ValueError, EOFError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: unreadable or corrupt PNG: {exc}") from None
    if array.ndim != 2 or array.dtype.kind not in "iu":
        raise DataError(
            f"{path}: expected a 2D integer image, got {array.dtype} {array.shape}"
        )
    if array.dtype != np.uint16:
        if array.min() < 0 or array.max() > 65535:
            raise DataError(f"{path}: values outside the 16-bit range")
        array = array.astype(np.uint16)
    if expected_shape is not None and array.shape != tuple(expected_shape):
        raise DataError(
            f"{path}: image is {array.shape[1]}x{array.shape[0]} (WxH) but the file "
            f"name says {expected_shape[1]}x{expected_shape[0]}"
        )
    if array.size == 0 or array.min() == array.max():
        raise DataError(
            f"{path}: constant image (every pixel is "
            f"{int(array.flat[0]) if array.size else 'absent'})"
        )
    return array


def write_kaggle_png(path: str | Path, array: NDArray[np.uint16]) -> Path:
    """Write a 2D uint16 array as a 16-bit grayscale PNG, atomically.

    Parameters
    ----------
    path : path
        Destination (parent folders are created).
    array : ndarray of shape (H, W), dtype uint16

    Returns
    -------
    Path
    """
    from PIL import Image

    array = np.asarray(array)
    if array.ndim != 2 or array.dtype != np.uint16:
        raise TypeError(f"array must be 2D uint16, got {array.dtype} {array.shape}")
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
    return Path(path)
