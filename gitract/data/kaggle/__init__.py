"""UW-Madison GI Tract (Kaggle) layout: ``train.csv`` RLE rows and 16-bit PNG slices.

Layout::

    DATA/train.csv                                    id,class,segmentation
    DATA/train/case123/case123_day20/scans/slice_0065_266_266_1.50_1.50.png

The file-name fields after ``slice_`` are the slice number, the width and height in
pixels and the pixel width and height in mm, so an image has shape (height, width) and
``spacing = (pixel height, pixel width)`` = (row, col) in mm.

Reading (:func:`read_kaggle_dataset`) stops at the first problem with a
:class:`~gitract.data.record.DataError` naming the file or row; validation
(:func:`validate_kaggle_dataset`) runs the same checks but collects every problem.

A stack with slices missing between its first and last (a *sparse* stack: a hand-picked
subset, as in many evaluation sets) is a problem by default; with ``allow_gaps=True``
it is read as the slices present, keeping their true ``slice_numbers`` (the 2.5D
context and the Hausdorff z coordinates follow the numbers), and
:func:`gap_warning` gives the one line to print per such stack.

The code lives in private modules, one topic each: ``_files`` (file names, listing the
PNGs, stack checks), ``_png`` (16-bit PNG I/O), ``_csv`` (the RLE CSV), ``_read``
(:func:`read_kaggle_dataset`), ``_submission`` (RLE rows, submissions), ``_validate``
(:func:`validate_kaggle_dataset`) and ``_problems`` (raise or collect).
"""

# ``Problems``, ``scan_images``, ``check_images``, ``default_csv``, ``read_csv`` and
# ``match_rows`` are public: gitract.data.index builds its scan table with the same checks.
from gitract.data.kaggle._csv import default_csv, match_rows, read_csv, write_train_csv
from gitract.data.kaggle._files import (
    check_images,
    gap_warning,
    kaggle_png_name,
    missing_slices,
    scan_images,
    scan_kaggle_images,
)
from gitract.data.kaggle._png import check_kaggle_png, read_kaggle_png, write_kaggle_png
from gitract.data.kaggle._problems import Problems
from gitract.data.kaggle._read import read_kaggle_dataset
from gitract.data.kaggle._submission import stacks_to_rle_frame, write_submission
from gitract.data.kaggle._validate import ValidationReport, validate_kaggle_dataset

__all__ = [
    "Problems",
    "ValidationReport",
    "check_images",
    "check_kaggle_png",
    "default_csv",
    "gap_warning",
    "kaggle_png_name",
    "match_rows",
    "missing_slices",
    "read_csv",
    "read_kaggle_dataset",
    "read_kaggle_png",
    "scan_images",
    "scan_kaggle_images",
    "stacks_to_rle_frame",
    "validate_kaggle_dataset",
    "write_kaggle_png",
    "write_submission",
    "write_train_csv",
]
