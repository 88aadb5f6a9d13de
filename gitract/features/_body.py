"""The body outline of a slice and its statistics (:func:`find_body`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

__all__ = ["BodyInfo", "find_body"]

_EPS = 1e-6


@dataclass(frozen=True)
class BodyInfo:
    """Body outline of one slice and the summary statistics the features use.

    Attributes
    ----------
    mask : ndarray of shape (H, W), dtype bool
    signed_distance : ndarray of shape (H, W), dtype float32
        Distance to the body edge in pixels, > 0 inside, < 0 outside.
    bbox : (r0, c0, r1, c1)
        Inclusive bounding box of the body.
    centroid : (row, col)
    mean, std : float
        Intensity statistics inside the body.
    """

    mask: NDArray[np.bool_]
    signed_distance: NDArray[np.float32]
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    mean: float
    std: float


def find_body(image: NDArray[np.floating], *, smooth_sigma: float = 2.0) -> BodyInfo:
    """Body outline: smoothed image above half Otsu's threshold, largest component, holes filled.

    Half of Otsu's threshold keeps dark tissue (fat or muscle at low intensity) inside
    the body while the air around it stays out. Gas-filled bowel inside the body is
    restored by hole filling. When nothing is found the whole slice is the body.

    Parameters
    ----------
    image : ndarray of shape (H, W), float
    smooth_sigma : float, default 2.0

    Returns
    -------
    BodyInfo
    """
    image = np.asarray(image, dtype=np.float32)
    smooth = ndi.gaussian_filter(image, smooth_sigma, truncate=3.0, mode="mirror")
    body = np.zeros(image.shape, dtype=bool)
    if float(smooth.max()) > float(smooth.min()):
        body = smooth > 0.5 * threshold_otsu(smooth)
        lab, n = ndi.label(body)
        if n > 1:
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            body = lab == int(np.argmax(sizes))
        body = ndi.binary_fill_holes(body)
    if body.sum() < 16:
        body = np.ones(image.shape, dtype=bool)
    inside = ndi.distance_transform_edt(body)
    outside = ndi.distance_transform_edt(~body) if not body.all() else np.zeros(body.shape)
    signed = (inside - outside).astype(np.float32)
    rr, cc = np.nonzero(body)
    values = image[body]
    return BodyInfo(
        mask=body,
        signed_distance=signed,
        bbox=(int(rr.min()), int(cc.min()), int(rr.max()), int(cc.max())),
        centroid=(float(rr.mean()), float(cc.mean())),
        mean=float(values.mean()),
        std=float(values.std()) + _EPS,
    )
