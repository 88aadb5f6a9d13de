"""Data layer: every source format becomes a list of :class:`SliceStack` records.

Readers: ``kaggle`` (UW-Madison GI Tract layout: train.csv RLE + 16-bit PNGs),
``pairs`` (image/mask folders, PNG or TIFF stacks), ``nifti`` (CT/MRI volumes),
and ``phantom`` (the embedded synthetic dataset, written in the Kaggle layout).
"""

from gitract.data.record import DataError, SliceStack
from gitract.data.rle import rle_decode, rle_encode

__all__ = ["DataError", "SliceStack", "rle_decode", "rle_encode"]
