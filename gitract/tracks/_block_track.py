"""The work of a block track: sample and featurise training blocks, fit, predict maps.

One track = a featurizer (:mod:`gitract.features`) + a block classifier (random forest,
LightGBM, the block CNN, any registered one). The engine reads training scans one at a
time and keeps their sampled rows (:func:`training_rows`), fits on them
(:func:`fit_block_track`), and turns each scan into probability maps
(:meth:`BlockTrack.predict_proba`); :func:`train_block_track` fits on stacks held in
memory (notebooks, tests). ``config`` is the track's settings
(:class:`gitract.tracks.BlockSettings`; ``make_featurizer()``, ``make_model()`` and the
sampling fields).

Every volume is normalised with :func:`gitract.preprocessing.normalize_intensity`
before featurising. Block centres of a slice are drawn with
:func:`gitract.blocks.sample_block_centres` under a seed derived from ``random_state`` and
the slice id, so a slice gets the same blocks in every fold; an optional ``cache`` (a
plain dict) keeps each slice's features.
"""

from __future__ import annotations

import math
import pickle
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gitract.blocks import (
    block_grid,
    dominant_label_map,
    dominant_labels,
    sample_block_centres,
)
from gitract.data.record import SliceStack
from gitract.features import find_body, slice_context
from gitract.postprocessing import ThresholdTuning
from gitract.preprocessing import normalize_intensity
from gitract.probmaps import centres_to_map, organ_proba, predict_proba_map
from gitract.tracks._autocontext import context_columns


def normalize_stack(stack: SliceStack) -> NDArray[np.float32]:
    """(S, H, W) float32 in [0, 1]: the stack's volume normalised as one volume.

    A constant volume (nothing to see) becomes zeros instead of raising.
    """
    if float(np.ptp(stack.image)) == 0.0:
        return np.zeros(stack.image.shape, np.float32)
    return normalize_intensity(stack.image)


def _slice_seed(random_state: int, slice_id: str) -> int:
    seq = np.random.SeedSequence([int(random_state) % 2**32, zlib.crc32(slice_id.encode())])
    return int(seq.generate_state(1)[0])


def _body_mask(image: NDArray[np.float32]) -> NDArray[np.bool_]:
    return find_body(image).mask


def _train_key(stack, s, featurizer, config):
    return ("train", stack.key, stack.ids[s], repr(featurizer), config.n_per_class,
            config.background_cap, config.border_fraction, config.body_background,
            config.random_state)


def _grid_key(stack, s, featurizer, step):
    return ("grid", stack.key, stack.ids[s], repr(featurizer), int(step))


def _slice_features(stack, s, volume, featurizer, config, cache, want, *, step=None):
    """Training ``(X, y, rows, cols, seconds)`` or grid ``(X, rows, cols, seconds)`` of
    slice ``s`` of the normalised ``volume`` (its :class:`~gitract.features.SliceContext`:
    spacing, neighbours by true slice number, stack position, goes to ``prepare``).

    With a cache, one ``prepare`` fills both entries (every slice is eventually used
    for training in one fold and predicted in another).
    """
    step = config.step if step is None else step
    keys = {"train": _train_key(stack, s, featurizer, config),
            "grid": _grid_key(stack, s, featurizer, step)}
    if cache is not None and keys[want] in cache:
        return cache[keys[want]]
    todo = [want]
    if cache is not None and stack.masks is not None:
        todo = [w for w in ("train", "grid") if keys[w] not in cache]
    t0 = time.perf_counter()
    image = volume[s]
    context = slice_context(volume, stack.slice_numbers, s, stack.spacing,
                            max_gap=getattr(featurizer, "max_gap", 1))
    state = featurizer.prepare(image, context)
    prep = time.perf_counter() - t0
    out = {}
    for what in todo:
        t0 = time.perf_counter()
        if what == "train":
            mask = stack.masks[s]
            rows, cols = sample_block_centres(
                mask, n_per_class=config.n_per_class, background_cap=config.background_cap,
                border_fraction=config.border_fraction, block_size=config.block_size,
                body_mask=_body_mask(image) if config.body_background else None,
                random_state=_slice_seed(config.random_state, stack.ids[s]),
            )
            X = featurizer.transform_prepared(state, rows, cols)
            y = dominant_labels(mask, rows, cols, classes=stack.classes)
            out[what] = (X, y, rows, cols, prep + time.perf_counter() - t0)
        else:
            rows, cols = block_grid(image.shape, step=step)
            rr, cc = np.meshgrid(rows, cols, indexing="ij")
            X = featurizer.transform_prepared(state, rr.ravel(), cc.ravel())
            out[what] = (X, rows, cols, prep + time.perf_counter() - t0)
        if cache is not None:
            cache[keys[what]] = out[what]
    return out[want]


def _chain_map(models, X, rows, cols, shape, names, config, spacing, interpolation):
    """The last of ``models``' (H, W, C) map of one slice from its grid features ``X``:
    stage 1 reads ``X``, each later stage ``X`` plus the previous map's context columns."""
    rr, cc = (a.ravel() for a in np.meshgrid(rows, cols, indexing="ij"))
    proba = None
    for model in models:
        Xs = X if proba is None else np.hstack([X, _context(proba, rr, cc, config, spacing)])
        grid = organ_proba(np.asarray(model.predict_proba(Xs)), model, names)
        proba = centres_to_map(grid.reshape(len(rows), len(cols), -1), rows, cols, shape,
                               interpolation=interpolation)
    return proba


def _context(proba, rows, cols, config, spacing):
    return context_columns(proba, rows, cols, spacing=spacing,
                           scales_mm=config.context_scales_mm, block_size=config.block_size)


# --------------------------------------------------------------------------- train
@dataclass
class BlockTrack:
    """A fitted block-classifier track.

    Attributes
    ----------
    model : estimator
        Fitted; ``predict_proba`` columns ordered like ``model.classes_`` (ints).
    featurizer : object
        From ``config.make_featurizer()``.
    config : Any
    classes : tuple of str
        Organ classes of the probability-map channels.
    stage_models : tuple of estimators
        Auto-context: the earlier stages' models fitted on all training cases (``model``
        is the last stage's); empty for one stage.
    tuning : ThresholdTuning or None
        Thresholds chosen on validation stacks (None until tuned).
    fit_seconds, featurize_seconds : float
        Classifier fit time and training-feature time (summed over slices).
    n_train_blocks : int
    class_counts : dict
        Training blocks per label (0 = background).
    train_keys : tuple of str
    search : list of dict
        Capacity-search trials on the validation cases (empty without a search).
    """

    model: Any
    featurizer: Any
    config: Any
    classes: tuple[str, ...]
    stage_models: tuple = ()
    tuning: ThresholdTuning | None = None
    fit_seconds: float = math.nan
    featurize_seconds: float = math.nan
    n_train_blocks: int = 0
    class_counts: dict[int, int] = field(default_factory=dict)
    train_keys: tuple[str, ...] = ()
    search: list[dict] = field(default_factory=list)

    def __iter__(self):
        """``model, featurizer = track``."""
        return iter((self.model, self.featurizer))

    def predict_proba(self, stacks: Sequence[SliceStack], *, cache: dict | None = None) -> ProbaMaps:
        """:func:`predict_stacks` with this track's featurizer, step and interpolation."""
        # The CNN's dense fully convolutional pass replaces the featurizer + grid path.
        featurizer = None if hasattr(self.model, "predict_proba_dense") else self.featurizer
        return predict_stacks(self.model, featurizer, stacks, step=self.config.step,
                              interpolation=self.config.interpolation, classes=self.classes,
                              cache=cache, config=self.config, stage_models=self.stage_models)

    def predict_masks(self, stacks: Sequence[SliceStack]) -> dict[str, NDArray[np.bool_]]:
        """Thresholded masks ``{key: (S, H, W, C) bool}`` (0.5 when untuned)."""
        tuning = self.tuning or ThresholdTuning.fixed(self.classes)
        return {key: tuning.apply(p) for key, p in self.predict_proba(stacks).items()}

    @property
    def model_bytes(self) -> int:
        """Size of the pickled model (all stages)."""
        return len(pickle.dumps((self.stage_models, self.model), protocol=pickle.HIGHEST_PROTOCOL))


def train_block_track(
    train_stacks: Sequence[SliceStack],
    config: Any,
    *,
    cache: dict | None = None,
) -> BlockTrack:
    """Fit a block classifier on the labelled training stacks.

    Each volume is normalised, block centres are sampled per slice (class-balanced,
    seeded per slice), featurised and labelled by the dominant class at the centre.

    Parameters
    ----------
    train_stacks : list of SliceStack
        Labelled stacks of the training cases.
    config : BlockSettings
        The track's settings.
    cache : dict, optional
        Keeps per-slice features for later calls (see the module notes).

    Returns
    -------
    BlockTrack
        ``model, featurizer = train_block_track(...)`` also works.

    Raises
    ------
    ValueError
        No stacks, unlabelled stacks, mixed classes, or a single label overall.
    """
    featurizer = config.make_featurizer()
    parts, keys, classes = [], [], None
    n_slices = sum(s.n_slices for s in train_stacks)
    for stack in train_stacks:
        if classes is None:
            classes = stack.classes
        elif stack.classes != classes:
            raise ValueError(f"training stack {stack.key!r} classes {stack.classes} != {classes}")
        parts.append(training_rows(stack, config, n_train_slices=n_slices, cache=cache,
                                   featurizer=featurizer))
        keys.append(stack.key)
    if classes is None:
        raise ValueError("train_stacks must hold at least one labelled SliceStack")
    return fit_block_track(parts, config, classes, train_keys=keys, featurizer=featurizer)


def per_slice_limit(config: Any, n_train_slices: int) -> int | None:
    """Blocks a slice may keep under ``config.max_train_blocks`` (None: no cap)."""
    if config.max_train_blocks is None:
        return None
    return max(1, -(-int(config.max_train_blocks) // max(int(n_train_slices), 1)))


def kept_slices(stack: SliceStack, config: Any, n_train_slices: int) -> NDArray:
    """Indices of the slices of ``stack`` that train (all, or a seeded share under
    ``config.max_train_slices``)."""
    if config.max_train_slices is None:
        return np.arange(stack.n_slices)
    keep = -(-int(config.max_train_slices) * stack.n_slices // max(int(n_train_slices), 1))
    if keep >= stack.n_slices:
        return np.arange(stack.n_slices)
    gen = np.random.default_rng(_slice_seed(config.random_state + 2, stack.key))
    return np.sort(gen.choice(stack.n_slices, size=keep, replace=False))


def training_rows(
    stack: SliceStack,
    config: Any,
    *,
    n_train_slices: int | None = None,
    cache: dict | None = None,
    featurizer: Any = None,
    chain: Sequence[Any] = (),
) -> tuple[NDArray, NDArray, float]:
    """The training sample of one labelled stack: ``(X, y, featurize_seconds)``.

    Each slice's block centres are sampled (class-balanced, seeded by the slice id),
    featurised and labelled by the dominant class at the centre; under
    ``config.max_train_blocks`` a slice keeps a seeded subsample of its blocks
    (``n_train_slices``, all training slices of the track, sets the share). A stage
    that reads the training scans one at a time keeps only these rows.

    With ``config.training == "dense"`` the rows are whole slices: ``X`` (S', H, W)
    float32 normalised slices and ``y`` (S', H, W) int8 dominant-class maps. Under
    ``config.max_train_slices`` only a seeded share of the slices is kept (either way).

    ``chain`` (auto-context): the earlier stages' models for this stack, fitted WITHOUT
    its case (cross-fitting); each slice's map from them adds the context columns.
    """
    if stack.masks is None:
        raise ValueError(f"training stack {stack.key!r} has no masks")
    slices = kept_slices(stack, config, n_train_slices or stack.n_slices)
    t0 = time.perf_counter()
    volume = normalize_stack(stack)
    if config.training == "dense":
        images = volume[slices]
        labels = np.stack([dominant_label_map(stack.masks[s], classes=stack.classes)
                           for s in slices]).astype(np.int8)
        return images, labels, time.perf_counter() - t0
    featurizer = config.make_featurizer() if featurizer is None else featurizer
    limit = per_slice_limit(config, n_train_slices or stack.n_slices)
    Xs, ys, seconds = [], [], 0.0
    for s in slices:
        local = {} if chain and cache is None else cache  # one prepare for both entries
        X, y, rows, cols, sec = _slice_features(stack, s, volume, featurizer, config, local,
                                                "train")
        if chain:
            t0 = time.perf_counter()
            Xg, gr, gc, sec_g = _slice_features(stack, s, volume, featurizer, config, local,
                                                "grid")
            proba = _chain_map(chain, Xg, gr, gc, volume.shape[1:], stack.classes, config,
                               stack.spacing, config.interpolation)
            X = np.hstack([X, _context(proba, rows, cols, config, stack.spacing)])
            sec += sec_g + time.perf_counter() - t0
        if limit is not None and len(y) > limit:
            gen = np.random.default_rng(_slice_seed(config.random_state + 1, stack.ids[s]))
            keep = np.sort(gen.choice(len(y), size=limit, replace=False))
            X, y = X[keep], y[keep]
        Xs.append(X)
        ys.append(y)
        seconds += sec
    return np.concatenate(Xs), np.concatenate(ys), seconds


def grid_rows(stack: SliceStack, config: Any, *, featurizer: Any = None,
              ) -> tuple[NDArray, NDArray]:
    """The prediction grid's rows of every slice of a labelled stack and the dominant
    class at each centre: ``(X, labels)`` (what the capacity search scores on)."""
    if stack.masks is None:
        raise ValueError(f"stack {stack.key!r} has no masks")
    featurizer = config.make_featurizer() if featurizer is None else featurizer
    volume = normalize_stack(stack)
    Xs, ys = [], []
    for s in range(stack.n_slices):
        X, rows, cols, _ = _slice_features(stack, s, volume, featurizer, config, None, "grid")
        rr, cc = (a.ravel() for a in np.meshgrid(rows, cols, indexing="ij"))
        Xs.append(X)
        ys.append(dominant_labels(stack.masks[s], rr, cc, classes=stack.classes))
    return np.concatenate(Xs), np.concatenate(ys)


def fit_block_track(
    parts: Sequence[tuple[NDArray, NDArray, float]],
    config: Any,
    classes: Sequence[str],
    *,
    train_keys: Sequence[str] = (),
    featurizer: Any = None,
    stage_models: Sequence[Any] = (),
) -> BlockTrack:
    """Fit the classifier on the stacks' :func:`training_rows` (in stack order).

    A ``list`` of parts is emptied while it is stacked, so the sample is held once, not
    twice (the parts and their concatenation), at the peak of a fit.
    """
    featurize_seconds = float(sum(p[2] for p in parts))
    model = config.make_model()
    if config.training == "dense":
        # Whole slices (their shapes may differ between stacks): a list, not one array.
        X = [image for p in parts for image in p[0]]
        y = [labels for p in parts for labels in p[1]]
        counts_by = np.bincount(np.concatenate([lab.ravel() for lab in y]).astype(np.int64))
        labels = np.flatnonzero(counts_by)
        counts = counts_by[labels]
        fit = model.fit_dense
    else:
        X, y = _stack_rows(parts)
        labels, counts = np.unique(y, return_counts=True)
        fit = model.fit
    if len(labels) < 2:
        raise ValueError(f"training blocks hold a single label {labels.tolist()}; need organs and background")
    t0 = time.perf_counter()
    fit(X, y)
    fit_seconds = time.perf_counter() - t0
    return BlockTrack(
        model=model, featurizer=config.make_featurizer() if featurizer is None else featurizer,
        config=config, classes=tuple(classes), stage_models=tuple(stage_models),
        fit_seconds=fit_seconds,
        featurize_seconds=featurize_seconds, n_train_blocks=int(counts.sum()),
        class_counts={int(k): int(v) for k, v in zip(labels, counts, strict=True)},
        train_keys=tuple(train_keys),
    )


class ProbaMaps(dict):
    """``{key: (S, H, W, C) float32}`` probability maps plus timing attributes.

    Attributes
    ----------
    seconds : float
        Wall time of featurising, classifying and interpolating all slices.
    n_slices : int
    ms_per_slice : float
    """

    seconds: float = math.nan
    n_slices: int = 0

    @property
    def ms_per_slice(self) -> float:
        return 1000.0 * self.seconds / self.n_slices if self.n_slices else math.nan


def predict_stacks(
    model: Any,
    featurizer: Any,
    stacks: Sequence[SliceStack],
    *,
    step: int = 4,
    interpolation: str = "linear",
    classes: Sequence[str] | None = None,
    cache: dict | None = None,
    config: Any = None,
    stage_models: Sequence[Any] = (),
) -> ProbaMaps:
    """Probability maps of every slice of every stack.

    Each volume is normalised as in training, then each slice goes through the block
    grid + interpolation of :mod:`gitract.probmaps` (a model with
    ``predict_proba_dense`` and ``featurizer=None`` uses its dense pass).

    Parameters
    ----------
    model : fitted block classifier
    featurizer : object or None
    stacks : list of SliceStack
    step : int, default 4
    interpolation : {"nearest", "linear", "cubic"}
    classes : sequence of str, optional
        Output channels; default each stack's ``classes``.
    cache : dict, optional
        Per-slice grid features (needs ``config`` for the sampling keys).
    config : BlockSettings, optional
        Needed with a featurizer that reads the slice context (spacing, neighbours) and
        with ``stage_models``.
    stage_models : sequence of estimators
        Auto-context: the earlier stages, run first on each slice (``model`` is last).

    Returns
    -------
    ProbaMaps
        ``{key: (S, H, W, C) float32}``; ``.ms_per_slice`` is the time to make one
        slice's map (features included, also when they came from the cache).
    """
    out = ProbaMaps()
    total = 0.0
    n = 0
    for stack in stacks:
        names = tuple(stack.classes if classes is None else classes)
        volume = normalize_stack(stack)
        maps = np.zeros((*volume.shape, len(names)), np.float32)
        for s in range(stack.n_slices):
            t0 = time.perf_counter()
            if featurizer is None or config is None:
                maps[s] = predict_proba_map(model, volume[s], featurizer=featurizer, step=step,
                                            interpolation=interpolation, classes=names,
                                            block_size=None if config is None else config.block_size)
                total += time.perf_counter() - t0
            else:
                X, rows, cols, feat_seconds = _slice_features(
                    stack, s, volume, featurizer, config, cache, "grid", step=step)
                t0 = time.perf_counter()
                maps[s] = _chain_map((*stage_models, model), X, rows, cols, volume.shape[1:],
                                     names, config, stack.spacing, interpolation)
                total += feat_seconds + time.perf_counter() - t0
            n += 1
        out[stack.key] = maps
    out.seconds = total
    out.n_slices = n
    return out


def _stack_rows(parts: Sequence[tuple[NDArray, NDArray, float]]) -> tuple[NDArray, NDArray]:
    """``np.concatenate`` of the parts' rows and labels; a list is emptied as it goes."""
    if not isinstance(parts, list) or not parts:
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    n = sum(len(p[1]) for p in parts)
    X = np.empty((n, *parts[0][0].shape[1:]), dtype=np.result_type(*(p[0] for p in parts)))
    y = np.empty(n, dtype=np.result_type(*(p[1] for p in parts)))
    parts.reverse()
    at = 0
    while parts:
        Xp, yp, _ = parts.pop()
        X[at : at + len(yp)] = Xp
        y[at : at + len(yp)] = yp
        at += len(yp)
    return X, y
