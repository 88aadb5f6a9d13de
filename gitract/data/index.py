"""A dataset as an index of case-day scans whose pixels are read only when needed.

``index_dataset(kind, path)`` lists the scans of a dataset (keys, cases, slice counts,
image sizes) without decoding any image. ``index.source(key)`` is a small picklable
:class:`ScanSource` that reads that one scan (``.read() -> SliceStack``), so a stage can
run scan by scan, in this process, in joblib workers or on a Dask cluster, and memory is
set by one scan rather than by the dataset.

- Kaggle layout (and the phantom, written in it): file names give sizes and spacings;
  ``train.csv`` is parsed once and only each scan's non-empty RLE strings are kept with
  its source; PNGs and masks are decoded in ``read``. Indexing checks every RLE row
  (well formed, in bounds) and every PNG's first and last bytes (a PNG, 16-bit grayscale,
  the size its name gives, not truncated), so such problems stop a run before it writes
  anything. An optional ``cache_dir`` keeps each decoded scan as a compressed ``.npz``
  (as nnU-Net's preprocessed folder), written atomically on first read and reused after.
- Small in-memory kinds (image/mask pairs, NIfTI, the real-slice sets in
  ``../shared/data``) are read once by their loader and held: they are a few dozen
  slices.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from gitract.constants import CLASSES
from gitract.data.kaggle import (
    Problems,
    check_images,
    check_kaggle_png,
    default_csv,
    match_rows,
    read_csv,
    read_kaggle_png,
    scan_images,
)
from gitract.data.loaders import has_data, load_dataset
from gitract.data.phantom import PhantomConfig, write_phantom
from gitract.data.record import DataError, SliceStack
from gitract.data.rle import check_rle, rle_decode
from gitract.paths import cache_dir as default_cache
from gitract.utils.io import atomic_path

__all__ = ["DatasetIndex", "ScanRef", "ScanSource", "index_dataset"]


def natural_key(text: str) -> tuple:
    """Sort key that orders ``case2`` before ``case10``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


@dataclass(frozen=True)
class ScanRef:
    """What is known of a scan without reading it."""

    key: str
    case: str
    day: str | None
    n_slices: int
    shape: tuple[int, int]


@dataclass(frozen=True)
class ScanSource:
    """Everything needed to read one scan, and nothing more (cheap to pickle).

    Attributes
    ----------
    ref : ScanRef
    kaggle : dict or None
        Kaggle layout: ``paths``, ``ids``, ``slices``, ``spacing``, ``labels`` (list of
        ``(slice position, channel, rle)`` for non-empty rows), ``csv``, ``order``,
        ``labelled``.
    stack : SliceStack or None
        In-memory kinds: the stack itself.
    classes : tuple of str
    slice_step : int
        Keep every ``slice_step``-th slice.
    cache_path : str or None
        Decoded-scan cache file (Kaggle layout only).
    """

    ref: ScanRef
    classes: tuple[str, ...]
    kaggle: dict | None = field(default=None, repr=False)
    stack: SliceStack | None = field(default=None, repr=False)
    slice_step: int = 1
    cache_path: str | None = None

    def read(self) -> SliceStack:
        """The scan as a :class:`SliceStack` (raw intensities, masks when labelled)."""
        stack = self.stack if self.stack is not None else self._read_kaggle()
        if self.slice_step > 1:
            stack = stack.subset(slice(None, None, self.slice_step))
        return stack

    def _read_kaggle(self) -> SliceStack:
        k = self.kaggle
        h, w = self.ref.shape
        image = masks = None
        if self.cache_path is not None and Path(self.cache_path).is_file():
            try:
                with np.load(self.cache_path) as z:
                    image = z["image"]
                    masks = np.unpackbits(z["masks"], count=int(np.prod(z["shape"])))
                    masks = masks.reshape(tuple(z["shape"])).astype(bool) if k["labelled"] else None
            except (OSError, ValueError, KeyError):
                image = masks = None  # a damaged cache file is decoded again
        if image is None:
            image, masks = self._decode(h, w)
            if self.cache_path is not None:
                self._write_cache(image, masks)
        return SliceStack(
            image=image.astype(np.float32), masks=masks, classes=self.classes,
            spacing=tuple(k["spacing"]), ids=tuple(k["ids"]), case=self.ref.case,
            day=self.ref.day, slice_numbers=tuple(k["slices"]),
            source=Path(k["paths"][0]).parent,
            meta={"dtype": "uint16", "csv": k["csv"], "order": k["order"],
                  "paths": tuple(k["paths"])},
        )

    def _decode(self, h: int, w: int):
        k = self.kaggle
        image = np.stack([read_kaggle_png(p, expected_shape=(h, w)) for p in k["paths"]])
        masks = None
        if k["labelled"]:
            masks = np.zeros((*image.shape, len(self.classes)), dtype=bool)
            for pos, channel, rle in k["labels"]:
                masks[pos, :, :, channel] = rle_decode(
                    rle, (h, w), order=k["order"],
                    where=f"{k['csv']}: row {k['ids'][pos]} {self.classes[channel]}")
        return image, masks

    def _write_cache(self, image, masks) -> None:
        path = Path(self.cache_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shape = np.asarray(masks.shape if masks is not None else (0,), dtype=np.int64)
        packed = np.packbits(masks.ravel()) if masks is not None else np.zeros(0, np.uint8)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, image=image, masks=packed, shape=shape)


@dataclass(frozen=True)
class DatasetIndex:
    """The scans of a dataset, in natural key order; see the module notes.

    Attributes
    ----------
    kind : str
    classes : tuple of str
    scans : tuple of ScanRef
    """

    kind: str
    classes: tuple[str, ...]
    scans: tuple[ScanRef, ...]
    _sources: dict[str, ScanSource] = field(repr=False, default_factory=dict)
    _fingerprint: str = ""
    _n_files: int = 0
    excluded: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def keys(self) -> list[str]:
        return [s.key for s in self.scans]

    def cases(self) -> list[str]:
        return sorted({s.case for s in self.scans}, key=natural_key)

    def keys_of(self, cases: Sequence[str]) -> list[str]:
        """Keys of the scans of ``cases``, case by case in the order given (a split's
        order, which sets the order of a training sample), scans in index order."""
        by_case: dict[str, list[str]] = {}
        for s in self.scans:
            by_case.setdefault(s.case, []).append(s.key)
        return [k for c in dict.fromkeys(cases) for k in by_case.get(c, [])]

    def ref(self, key: str) -> ScanRef:
        return self._sources[key].ref

    def source(self, key: str) -> ScanSource:
        """The picklable reader of one scan."""
        if key not in self._sources:
            raise KeyError(f"no scan {key!r} in this {self.kind} index")
        return self._sources[key]

    def read(self, key: str) -> SliceStack:
        """Read one scan (pixels and masks)."""
        return self.source(key).read()

    def iter_stacks(self, keys: Sequence[str] | None = None) -> Iterator[SliceStack]:
        """Read the scans one at a time (each dropped when the caller moves on)."""
        for key in self.keys() if keys is None else keys:
            yield self.read(key)

    @property
    def labelled(self) -> bool:
        """Whether every scan has masks (a Kaggle-layout ``train.csv``, or masks held)."""
        return all(s.kaggle["labelled"] if s.kaggle is not None else s.stack.masks is not None
                   for s in self._sources.values())

    @property
    def n_slices(self) -> int:
        return sum(s.n_slices for s in self.scans)

    @property
    def max_shape(self) -> tuple[int, int]:
        return (max(s.shape[0] for s in self.scans), max(s.shape[1] for s in self.scans))

    def fingerprint(self) -> dict:
        """File count and a hash of the index (keys, slice counts, sizes, file names).

        ``n_files`` counts the image files (Kaggle layout) or slices (in-memory kinds) of
        the whole dataset as indexed; ``n_scans`` and ``n_slices`` what a run keeps of it
        (``max_cases``, ``slice_step``).
        """
        return {"n_files": self._n_files, "n_scans": len(self.scans),
                "n_slices": self.n_slices, "sha1": self._fingerprint}

    def restrict(self, *, max_cases: int | None = None, slice_step: int = 1,
                 exclude: Sequence[str] = ()) -> DatasetIndex:
        """Drop the ``exclude`` cases and case-days (scan keys), then keep the first
        ``max_cases`` cases (natural order) and every ``slice_step``-th slice of each scan.

        The result's ``excluded`` maps each id of ``exclude`` to the scans it dropped (none:
        the id is not in the dataset).
        """
        dropped = {e: tuple(r.key for r in self.scans if e in (r.key, r.case)) for e in exclude}
        gone = {k for keys in dropped.values() for k in keys}
        kept = [r for r in self.scans if r.key not in gone]
        cases = sorted({r.case for r in kept}, key=natural_key)
        keep = set(cases[:max_cases]) if max_cases is not None else None
        scans, sources = [], {}
        for ref in kept:
            if keep is not None and ref.case not in keep:
                continue
            src = self._sources[ref.key]
            if slice_step > 1:
                n = len(range(0, ref.n_slices, slice_step))
                new_ref = replace(ref, n_slices=n)
                src = replace(src, ref=new_ref, slice_step=src.slice_step * slice_step)
                ref = new_ref
            scans.append(ref)
            sources[ref.key] = src
        parts = [self._fingerprint, str(max_cases), str(slice_step)]
        digest = _sha1(parts + sorted(gone) if gone else parts)
        return DatasetIndex(self.kind, self.classes, tuple(scans), sources, digest,
                            self._n_files, dropped)


def _sha1(parts: Sequence[str]) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------- builders
def _kaggle_index(data_dir: Path, *, classes: Sequence[str], order: str,
                  images_subdir: str, csv_path, cache_dir, allow_gaps: bool = False,
                  labels: bool = True) -> DatasetIndex:
    classes = tuple(classes)
    problems = Problems(strict=True)
    images = check_images(scan_images(data_dir / images_subdir, problems), problems,
                           allow_gaps=allow_gaps)
    if not len(images):
        raise DataError(f"{data_dir / images_subdir}: no scans found")
    # Every file's PNG header and every RLE row are checked here, before any work: a
    # problem they show stops a run before its folder exists (damage past a PNG's
    # header shows only when its scan is decoded).
    for path, h, w in zip(images["path"], images["height"], images["width"], strict=True):
        check_kaggle_png(path, expected_shape=(h, w))
    csv = default_csv(data_dir, csv_path, images_subdir) if labels else None
    labels_by_id: dict[str, list[tuple[int, str]]] = {}
    if csv is not None:
        rows = read_csv(csv, classes, problems)
        joined = match_rows(images, rows, csv, classes, problems)
        channel = {c: k for k, c in enumerate(classes)}
        labelled = joined[joined["segmentation"].str.strip() != ""]
        for slice_id, cls, rle, h, w in zip(labelled["id"], labelled["class"],
                                            labelled["segmentation"], labelled["height"],
                                            labelled["width"], strict=True):
            check_rle(rle, (h, w), where=f"{csv}: row {slice_id} {cls}")
            labels_by_id.setdefault(slice_id, []).append((channel[cls], rle))
    images = images.sort_values(["case", "day", "slice"])
    scans, sources, digest = [], {}, []
    groups = images.groupby(["case", "day"], sort=False)
    for case, day in sorted(groups.groups, key=lambda k: (natural_key(k[0]), natural_key(k[1]))):
        g = groups.get_group((case, day))
        key = f"{case}_{day}"
        h, w = int(g["height"].iloc[0]), int(g["width"].iloc[0])
        ids = tuple(g["id"])
        labels = [(pos, ch, rle) for pos, sid in enumerate(ids)
                  for ch, rle in labels_by_id.get(sid, ())]
        ref = ScanRef(key, case, day, len(ids), (h, w))
        info = {"paths": tuple(str(p) for p in g["path"]), "ids": ids,
                "slices": tuple(int(n) for n in g["slice"]),
                "spacing": (float(g["spacing_row"].iloc[0]), float(g["spacing_col"].iloc[0])),
                "labels": labels, "csv": None if csv is None else str(csv), "order": order,
                "labelled": csv is not None}
        scans.append(ref)
        digest.append(f"{key}:{len(ids)}:{h}x{w}:{Path(info['paths'][0]).name}"
                      f":{sum(len(r) for _, _, r in labels)}")
        sources[key] = ScanSource(ref, classes, kaggle=info)
    fingerprint = _sha1(digest)
    if cache_dir is not None:
        folder = Path(cache_dir) / f"scans-{fingerprint}"
        sources = {k: replace(s, cache_path=str(folder / f"{k}.npz")) for k, s in sources.items()}
    return DatasetIndex("kaggle", classes, tuple(scans), sources, fingerprint, len(images))


def _memory_index(kind: str, stacks: Sequence[SliceStack]) -> DatasetIndex:
    if not stacks:
        raise DataError(f"dataset {kind!r}: no stacks")
    classes = tuple(stacks[0].classes)
    scans, sources, digest = [], {}, []
    for stack in sorted(stacks, key=lambda s: natural_key(s.key)):
        if stack.key in sources:
            raise DataError(f"dataset {kind!r}: scan key {stack.key!r} appears twice")
        ref = ScanRef(stack.key, stack.case, stack.day, stack.n_slices,
                      (int(stack.shape[0]), int(stack.shape[1])))
        scans.append(ref)
        sources[stack.key] = ScanSource(ref, classes, stack=stack)
        digest.append(f"{stack.key}:{stack.n_slices}:{ref.shape}:{','.join(stack.ids)}")
    return DatasetIndex(kind, classes, tuple(scans), sources, _sha1(digest),
                        sum(s.n_slices for s in stacks))


def index_dataset(kind: str, path: str | Path | None = None, *,
                  cache_dir: str | Path | None = None, **options) -> DatasetIndex:
    """Index a dataset of any kind that :func:`gitract.data.loaders.load_dataset` reads.

    Parameters
    ----------
    kind : str
        ``kaggle`` and ``phantom`` are indexed lazily (see the module notes); the other
        kinds are loaded once and held in memory.
    path : path, optional
        As in ``load_dataset``; the phantom is written there first when absent
        (``options["config"]`` a :class:`PhantomConfig`).
    cache_dir : path, optional
        Keep decoded Kaggle-layout scans there (``scans-<fingerprint>/<key>.npz``).
    **options
        ``classes``, ``order``, ``images_subdir``, ``csv_path``, ``allow_gaps`` (Kaggle
        layout: index sparse stacks as the slices present, with their true slice
        numbers, instead of stopping at a gap), ``labels`` (False: no RLE CSV is read nor
        checked, the scans are unlabelled; e.g. to predict) or the loader's own options.
    """
    if kind in ("kaggle", "phantom"):
        unknown = sorted(set(options) - {"classes", "order", "images_subdir", "csv_path", "config",
                                         "allow_gaps", "labels"})
        if unknown:  # checked before anything is written or read
            raise ValueError(f"index_dataset({kind!r}): unknown option(s) {unknown}")
        if kind == "phantom":
            config = options.pop("config", None)
            path = Path(path) if path is not None else default_cache() / "phantom"
            if not has_data(path):
                path = write_phantom(path, config if config is not None else PhantomConfig())
        if path is None:
            raise ValueError(f"index_dataset({kind!r}) needs a path")
        index = _kaggle_index(
            Path(path), classes=options.pop("classes", CLASSES), order=options.pop("order", "C"),
            images_subdir=options.pop("images_subdir", "train"),
            csv_path=options.pop("csv_path", None), cache_dir=cache_dir,
            allow_gaps=bool(options.pop("allow_gaps", False)),
            labels=bool(options.pop("labels", True)))
        return replace(index, kind=kind)
    return _memory_index(kind, load_dataset(kind, path, **options))
