"""One entry point for every data source: ``load_dataset(kind, path, **kw)``.

Kinds and their default paths (real sets are read in place from
:func:`gitract.paths.shared_data_dir`):

=================  ================================  =====================================
kind               reader                            default path
=================  ================================  =====================================
``kaggle``         ``kaggle.read_kaggle_dataset``    required
``phantom``        ``phantom.write_phantom`` + kaggle  ``cache_dir()/"phantom"`` (generated
                                                     there when it holds no data)
``uwmgi_derived``  ``pairs.read_uwmgi_derived``      ``<shared>/uwmgi_derived_512``
``isbi2012``       ``pairs.read_isbi2012``           ``<shared>/isbi2012_em``
``totalseg``       ``nifti.read_totalseg_examples``  ``<shared>/totalseg_examples``
``colin27``        ``nifti.read_colin27``            ``<shared>/colin27_aal``
``pairs``          ``pairs.read_image_mask_pairs``   ``path/images`` + ``path/masks`` (or
                                                     ``image_dir=``/``mask_dir=``)
``nifti``          ``nifti.read_nifti_volume``       ``path`` = image; ``label_path=``
=================  ================================  =====================================
"""

from __future__ import annotations

from pathlib import Path

from gitract.data.kaggle import read_kaggle_dataset
from gitract.data.nifti import read_colin27, read_nifti_volume, read_totalseg_examples
from gitract.data.pairs import read_image_mask_pairs, read_isbi2012, read_uwmgi_derived
from gitract.data.phantom import PhantomConfig, write_phantom
from gitract.data.record import DataError, SliceStack
from gitract.paths import cache_dir, shared_data_dir

__all__ = ["DATASET_KINDS", "has_data", "load_dataset"]

_SHARED = {
    "uwmgi_derived": "uwmgi_derived_512",
    "isbi2012": "isbi2012_em",
    "totalseg": "totalseg_examples",
    "colin27": "colin27_aal",
}

DATASET_KINDS: tuple[str, ...] = (
    "kaggle", "phantom", "uwmgi_derived", "isbi2012", "totalseg", "colin27", "pairs", "nifti",
)


def has_data(path: Path) -> bool:
    """Whether ``path`` is a folder holding at least one file (hidden files aside)."""
    return path.is_dir() and any(p.is_file() and not p.name.startswith(".")
                                 for p in path.rglob("*"))


def _require(path: str | Path | None, kind: str) -> Path:
    if path is None:
        raise ValueError(f"load_dataset({kind!r}) needs a path")
    return Path(path)


def load_dataset(kind: str, path: str | Path | None = None, **kw) -> list[SliceStack]:
    """Load a dataset of any supported kind as a list of :class:`SliceStack`.

    Parameters
    ----------
    kind : str
        One of :data:`DATASET_KINDS` (table in the module docstring).
    path : path, optional
        Dataset location; real sets default to their folder in the shared data.
    **kw
        Passed to the reader. ``phantom`` also takes ``config`` (a ``PhantomConfig``;
        default ``PhantomConfig()``), used only when it generates the data.

    Returns
    -------
    list of SliceStack

    Raises
    ------
    ValueError
        Unknown ``kind`` (named) or a missing required path.
    DataError
        From the readers, when a default real-data folder is absent or data are bad.

    Examples
    --------
    >>> load_dataset("mri")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown dataset kind 'mri'; expected one of ('kaggle', 'phantom', ...)
    """
    if kind not in DATASET_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {DATASET_KINDS}")
    if kind in _SHARED:
        root = Path(path) if path is not None else shared_data_dir() / _SHARED[kind]
        if not root.is_dir():
            raise DataError(f"{root}: {kind} data folder does not exist")
        if kind == "uwmgi_derived":
            return read_uwmgi_derived(root, **kw)
        if kind == "isbi2012":
            return read_isbi2012(root, **kw)
        if kind == "totalseg":
            return read_totalseg_examples(root, **kw)
        return read_colin27(root, **kw)
    if kind == "kaggle":
        root = _require(path, kind)
        return read_kaggle_dataset(root, **kw)
    if kind == "phantom":
        root = Path(path) if path is not None else cache_dir() / "phantom"
        config = kw.pop("config", None)
        if not has_data(root):
            root = Path(write_phantom(root, config if config is not None else PhantomConfig()))
        return read_kaggle_dataset(root, **kw)
    if kind == "pairs":
        image_dir = kw.pop("image_dir", None)
        mask_dir = kw.pop("mask_dir", None)
        if image_dir is None or mask_dir is None:
            root = _require(path, kind)
            image_dir = image_dir or root / "images"
            mask_dir = mask_dir or root / "masks"
        return read_image_mask_pairs(image_dir, mask_dir, **kw)
    label_path = kw.pop("label_path", None)
    return [read_nifti_volume(_require(path, kind), label_path, **kw)]
