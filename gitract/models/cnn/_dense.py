"""Dense training of the block CNN: crops of whole slices, every centre a training block.

:meth:`SmallBlockCNN.forward_dense` gives the logits of the block centred at every pixel
of a padded crop in one pass, so a step on a few crops trains on tens of thousands of
blocks where sampled-block training sees a few hundred. The loss
(:func:`dense_loss`) is the class-weighted cross-entropy over all those centres: the
same number as the weighted mean of the block-wise losses of the blocks cut out of the
crop (``tests/models/test_cnn_dense_training.py`` pins it), so the trained weights
serve the dense inference path (:func:`~gitract.models.nets._block_cnn.to_dense`)
unchanged.

The sample is a list of whole normalised slices and their label maps (the caller caps
how many, see ``BlockTrackConfig.max_train_slices``); crops are cut, padded by
reflection like the blocks at inference, and augmented on the fly. With
``context_features`` each slice also keeps its :class:`~gitract.features.ContextPlanes`
(computed on the slice before any augmentation), read out as maps at each crop's
centres; flips and turns move them with the labels, so every centre keeps the context of
the block centred there (where it lies in the body), while its pixels turn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.ndimage import affine_transform

from gitract.features import prepare_context
from gitract.models._device import select_device
from gitract.models.cnn._blocks import _better_loss, set_history
from gitract.models.cnn._dihedral import BRIGHTNESS, CONTRAST, LOG_GAMMA, NOISE_SD
from gitract.models.cnn._threads import _torch_threads
from gitract.models.train_torch import lr_at, run_training
from gitract.utils import check_random_state

__all__ = ["DenseSample", "affine_margin", "affine_pair", "augment_pair", "dense_loss", "fit_dense", "reflect_index", "train_dense"]

#: Label of centres that do not count (outside a slice smaller than the crop, or
#: background left out by ``background_fraction``).
IGNORE = -1
#: Share of the step budget spent warming the learning rate up (then cosine decay).
WARMUP_FRACTION = 0.05
#: Points of the learning curve (validation loss, mean training loss since the last one).
N_EVALUATIONS = 10
#: Fixed validation crops, drawn once from the held-out slices (cheap and comparable):
#: at least ``N_VAL_CROPS`` crops and ``N_VAL_CENTRES`` block centres, so that small crops
#: (``crop_size=1``: blocks on the fly) are not judged on a handful of blocks.
N_VAL_CROPS = 8
N_VAL_CENTRES = 4096


def n_val_crops(crop_size: int) -> int:
    """Validation crops for crops of ``crop_size`` (see ``N_VAL_CENTRES``).

    Examples
    --------
    >>> n_val_crops(96), n_val_crops(32), n_val_crops(1)
    (8, 8, 4096)
    """
    return max(N_VAL_CROPS, -(-N_VAL_CENTRES // int(crop_size) ** 2))


def reflect_index(index: NDArray[np.integer], n: int) -> NDArray[np.int64]:
    """Map indices outside ``[0, n)`` back inside by mirror reflection (no edge repeat).

    The same rule as ``np.pad(..., mode="reflect")``, also for pads longer than ``n``.

    Examples
    --------
    >>> reflect_index(np.arange(-3, 6), 4).tolist()
    [3, 2, 1, 0, 1, 2, 3, 2, 1]
    """
    index = np.asarray(index, dtype=np.int64)
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    m = np.mod(index, period)
    return np.where(m >= n, period - m, m)


def augment_pair(
    crop: NDArray[np.floating],
    labels: NDArray[np.integer],
    gen: np.random.Generator,
    *,
    dihedral: bool = True,
    intensity: bool = True,
    context: NDArray[np.floating] | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]] | tuple[
        NDArray[np.float32], NDArray[np.int64], NDArray[np.float32]]:
    """Randomly transform a padded crop and its label map together.

    Parameters
    ----------
    crop : ndarray of shape (L + 2p, L + 2p), float
        Image crop padded by ``p`` on each side around the centres of ``labels``.
    labels : ndarray of shape (L, L), int
        Class of the block centred at each pixel of the unpadded crop.
    gen : numpy Generator
    dihedral : bool
        A random flip and 90-degree turn of both arrays (both are centred squares, so
        the label at each position stays the class of the block centred there).
    intensity : bool
        Gamma, contrast, brightness and Gaussian noise on the image only.
    context : ndarray of shape (K, L, L), optional
        Context maps of the centres of ``labels``: they move with the labels (same
        geometric transform, values unchanged) and are returned third.

    Returns
    -------
    crop : ndarray of shape (L + 2p, L + 2p), float32
    labels : ndarray of shape (L, L), int64
    context : ndarray of shape (K, L, L), float32
        Only when ``context`` is given. New arrays; the inputs are not modified.
    """
    crop = np.asarray(crop, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if context is not None:
        context = np.asarray(context, dtype=np.float32)
    if dihedral:
        k = int(gen.integers(4))
        crop, labels = np.rot90(crop, k), np.rot90(labels, k)
        if context is not None:
            context = np.rot90(context, k, axes=(-2, -1))
        if gen.random() < 0.5:
            crop, labels = crop[:, ::-1], labels[:, ::-1]
            if context is not None:
                context = context[..., ::-1]
    crop = np.ascontiguousarray(crop, dtype=np.float32)
    labels = np.ascontiguousarray(labels)
    if intensity:
        gamma = math.exp(gen.uniform(-LOG_GAMMA, LOG_GAMMA))
        crop = np.power(np.clip(crop, 0.0, None), gamma, dtype=np.float32)
        crop = crop * np.float32(1.0 + gen.uniform(-CONTRAST, CONTRAST))
        crop = crop + np.float32(gen.uniform(-BRIGHTNESS, BRIGHTNESS))
        sd = gen.uniform(0.0, NOISE_SD)
        crop = crop + (sd * gen.standard_normal(crop.shape)).astype(np.float32)
    if context is not None:
        return crop.astype(np.float32, copy=False), labels, np.ascontiguousarray(context)
    return crop.astype(np.float32, copy=False), labels


def affine_margin(size: int, max_rotation: float, max_scale: float) -> int:
    """Extra pixels on each side of a square of ``size`` pixels that a rotation by up to
    ``max_rotation`` degrees and a zoom out by up to ``max_scale`` reads from (the output
    corners land that far out in the source).

    Examples
    --------
    >>> affine_margin(33, 0.0, 0.0), affine_margin(33, 15.0, 0.1)
    (0, 7)
    """
    if max_rotation <= 0.0 and max_scale <= 0.0:
        return 0
    theta = math.radians(min(float(max_rotation), 45.0))
    reach = (size / 2.0) * (math.cos(theta) + math.sin(theta)) / (1.0 - float(max_scale))
    return int(math.ceil(reach - size / 2.0)) + 1


def affine_pair(
    crop: NDArray[np.floating],
    labels: NDArray[np.integer],
    gen: np.random.Generator,
    *,
    margin: int,
    max_rotation: float,
    max_scale: float,
    context: NDArray[np.floating] | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]] | tuple[
        NDArray[np.float32], NDArray[np.int64], NDArray[np.float32]]:
    """Rotate and scale a padded crop and its label map together about their centre.

    The angle is uniform in ``[-max_rotation, max_rotation]`` degrees and the zoom
    factor uniform in ``[1 - max_scale, 1 + max_scale]``; the image is resampled
    linearly, the labels by nearest neighbour, so the label at each output position is
    the class of the source pixel the block's centre came from. Both inputs carry
    ``margin`` extra pixels on each side (:func:`affine_margin`), which the output drops:
    the rotated corners read real pixels, not a reflection of the crop.

    Parameters
    ----------
    crop : ndarray of shape (L + 2p + 2m, L + 2p + 2m)
    labels : ndarray of shape (L + 2m, L + 2m)
    gen : numpy Generator
    margin : int
        ``m`` above.
    max_rotation : float
        Degrees.
    max_scale : float
        In [0, 1).
    context : ndarray of shape (K, L + 2m, L + 2m), optional
        Context maps of the centres of ``labels``: resampled linearly like the image, at
        the labels' positions, and returned third.

    Returns
    -------
    crop : ndarray of shape (L + 2p, L + 2p), float32
    labels : ndarray of shape (L, L), int64
    context : ndarray of shape (K, L, L), float32
        Only when ``context`` is given.
    """
    theta = math.radians(gen.uniform(-max_rotation, max_rotation)) if max_rotation > 0 else 0.0
    zoom = 1.0 + gen.uniform(-max_scale, max_scale) if max_scale > 0 else 1.0
    cos, sin = math.cos(theta) / zoom, math.sin(theta) / zoom
    matrix = np.array([[cos, -sin], [sin, cos]])

    def warp(array, order, cval):
        n_in = array.shape[0]
        n_out = n_in - 2 * margin
        centre_in, centre_out = (n_in - 1) / 2.0, (n_out - 1) / 2.0
        offset = centre_in - matrix @ np.array([centre_out, centre_out])
        return affine_transform(array, matrix, offset=offset, output_shape=(n_out, n_out),
                                order=order, mode="nearest" if order == 0 else "reflect",
                                cval=cval)

    out = warp(np.asarray(crop, dtype=np.float32), 1, 0.0).astype(np.float32, copy=False)
    lab = warp(np.asarray(labels, dtype=np.int64), 0, IGNORE).astype(np.int64, copy=False)
    if context is None:
        return out, lab
    maps = np.stack([warp(np.asarray(plane, dtype=np.float32), 1, 0.0) for plane in context])
    return out, lab, maps.astype(np.float32, copy=False)


@dataclass
class DenseSample:
    """Whole slices and their label maps (class indices 0..K-1) to cut crops from.

    Attributes
    ----------
    images : list of ndarray (H, W) float32
    labels : list of ndarray (H, W) int8
    context : list of ContextPlanes, optional
        Each slice's context (:func:`gitract.features.prepare_context`); crops then come
        with their context maps (K, L, L), a third array.
    """

    images: list[NDArray[np.float32]]
    labels: list[NDArray[np.int8]]
    context: list | None = None

    def __post_init__(self) -> None:
        # Organ pixels per slice (flat indices), for crops centred on an organ.
        self._foreground = [np.flatnonzero(lab > 0) for lab in self.labels]

    def __len__(self) -> int:
        return len(self.images)

    def crop(self, s: int, row: int, col: int, *, crop_size: int, pad: int):
        """The crop of slice ``s`` whose centres are the ``crop_size`` square around
        (row, col) (moved inside the slice), padded by ``pad`` by reflection; centres
        outside a slice smaller than the crop are labelled ``IGNORE`` (context 0)."""
        image, labels = self.images[s], self.labels[s]
        h, w = image.shape
        r0 = int(np.clip(row - crop_size // 2, 0, max(h - crop_size, 0)))
        c0 = int(np.clip(col - crop_size // 2, 0, max(w - crop_size, 0)))
        rows = reflect_index(np.arange(r0 - pad, r0 + crop_size + pad), h)
        cols = reflect_index(np.arange(c0 - pad, c0 + crop_size + pad), w)
        out = np.full((crop_size, crop_size), IGNORE, np.int64)
        part = labels[r0 : r0 + crop_size, c0 : c0 + crop_size]
        out[: part.shape[0], : part.shape[1]] = part
        if self.context is None:
            return image[np.ix_(rows, cols)], out
        planes = self.context[s]
        context = np.zeros((planes.n_features, crop_size, crop_size), np.float32)
        context[:, : part.shape[0], : part.shape[1]] = planes.window(r0, c0, *part.shape)
        return image[np.ix_(rows, cols)], out, context

    def draw(self, gen: np.random.Generator, *, crop_size: int, pad: int,
             foreground_fraction: float):
        """One random crop: a random slice, centred on a random organ pixel with
        probability ``foreground_fraction`` (when the slice has one), else anywhere."""
        s = int(gen.integers(len(self)))
        h, w = self.images[s].shape
        fg = self._foreground[s]
        if len(fg) and gen.random() < foreground_fraction:
            row, col = divmod(int(fg[gen.integers(len(fg))]), w)
        else:
            row, col = int(gen.integers(h)), int(gen.integers(w))
        return self.crop(s, row, col, crop_size=crop_size, pad=pad)

    def batch(self, gen: np.random.Generator, n: int, *, crop_size: int, pad: int,
              foreground_fraction: float, dihedral: bool = False, intensity: bool = False,
              max_rotation: float = 0.0, max_scale: float = 0.0):
        """``n`` augmented crops: (n, 1, L + 2 pad, L + 2 pad) float32 and (n, L, L)
        int64 tensors (with ``context``: and (n, K, L, L) float32 context maps); a
        rotation / scaling, when asked, comes before the flips and turns."""
        margin = affine_margin(crop_size + 2 * pad, max_rotation, max_scale)
        xs, ys, cs = [], [], []
        for _ in range(n):
            crop, labels, *context = self.draw(gen, crop_size=crop_size + 2 * margin, pad=pad,
                                               foreground_fraction=foreground_fraction)
            if margin:
                crop, labels, *context = affine_pair(
                    crop, labels, gen, margin=margin, max_rotation=max_rotation,
                    max_scale=max_scale, context=context[0] if context else None)
            crop, labels, *context = augment_pair(
                crop, labels, gen, dihedral=dihedral, intensity=intensity,
                context=context[0] if context else None)
            xs.append(crop)
            ys.append(labels)
            cs += context
        out = torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys))
        return (*out, torch.from_numpy(np.stack(cs))) if cs else out


def dense_loss(net, x: torch.Tensor, y: torch.Tensor, *,
               weight: torch.Tensor | None = None,
               context: torch.Tensor | None = None) -> torch.Tensor:
    """Class-weighted cross-entropy over every centre of padded crops.

    Parameters
    ----------
    net : SmallBlockCNN
    x : tensor of shape (N, 1, L + block_size - 1, L + block_size - 1)
    y : tensor of shape (N, L, L), int64
        Class index of the block centred at each position, ``IGNORE`` to leave it out.
    weight : tensor of shape (n_classes,), optional
    context : tensor of shape (N, K, L, L), optional
        Context maps of the centres (a net with ``n_context = K``).

    Returns
    -------
    tensor (scalar)
        ``sum(w[y] * ce) / sum(w[y])`` over the counted centres: the value
        ``torch.nn.CrossEntropyLoss(weight)`` gives on those blocks cut out one by one.
    """
    logits = net.forward_dense(x, context)
    return torch.nn.functional.cross_entropy(logits.float(), y, weight=weight,
                                             ignore_index=IGNORE)


def _class_weight(model, labels: Sequence[NDArray], n_classes: int) -> NDArray[np.float64] | None:
    if isinstance(model.class_weight, dict):
        return np.array([float(model.class_weight.get(c, 1.0)) for c in model.classes_.tolist()])
    if model.class_weight != "balanced":
        return None
    counts = np.zeros(n_classes, np.float64)
    for lab in labels:
        counts += np.bincount(lab.ravel(), minlength=n_classes)[:n_classes]
    return np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)


def train_dense(model, train: DenseSample, val: DenseSample | None, n_classes: int,
                rng: np.random.Generator) -> None:
    """Dense training on :func:`~gitract.models.train_torch.run_training`: each "epoch"
    is the run of steps up to the next of ``N_EVALUATIONS`` evaluation points, each step
    draws its crops afresh; sets ``net_``, ``history_``, ``best_epoch_``, ``n_epochs_``
    and ``n_steps_`` on ``model`` (a :class:`BlockCNNClassifier` in ``fit_dense``)."""
    dev = model.device_
    pad = int(model.block_size) // 2
    crop_size, per_step = int(model.crop_size), int(model.crops_per_step)
    if model.max_steps is not None:
        n_steps = int(model.max_steps)
    else:  # an epoch: one crop per training slice
        n_steps = int(model.max_epochs) * -(-len(train) // per_step)
    net = model._make_net(n_classes).to(dev)
    w = _class_weight(model, train.labels, n_classes)
    weight = None if w is None else torch.as_tensor(w, dtype=torch.float32, device=dev)
    options = {"crop_size": crop_size, "pad": pad,
               "foreground_fraction": float(model.foreground_fraction)}
    val_batch = None
    if val is not None and len(val):
        val_gen = np.random.default_rng(rng.integers(2**63 - 1))
        val_batch = val.batch(val_gen, n_val_crops(crop_size), **options)
    train_gen = np.random.default_rng(rng.integers(2**63 - 1))
    mask_gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
    ends = sorted({max(1, round(n_steps * (i + 1) / N_EVALUATIONS))
                   for i in range(N_EVALUATIONS)})

    def batches(segment: int):
        for _ in range(ends[segment - 1] - (ends[segment - 2] if segment > 1 else 0)):
            x, y, *context = train.batch(train_gen, per_step, dihedral=bool(model.augment),
                                         intensity=bool(model.intensity_augment),
                                         max_rotation=float(model.max_rotation),
                                         max_scale=float(model.max_scale), **options)
            if float(model.background_fraction) < 1.0:
                drop = torch.rand(y.shape, generator=mask_gen) >= float(model.background_fraction)
                y = torch.where((y == 0) & drop, torch.full_like(y, IGNORE), y)
            yield x, y, context[0] if context else None

    def step_loss(net, batch):
        x, y, context = batch
        if not bool((y != IGNORE).any()):
            return None  # no centre counts: the step passes without an update
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        if context is not None:
            context = context.to(dev, non_blocking=True)
        return dense_loss(net, x, y, weight=weight, context=context), 1

    fit = run_training(
        net, batches, step_loss, device=dev, lr=float(model.lr),
        weight_decay=float(model.weight_decay),
        schedule=partial(lr_at, lr=float(model.lr), warmup_fraction=WARMUP_FRACTION),
        max_steps=n_steps,
        evaluate=(lambda net: {"val_loss": _val_loss(net, val_batch, weight, dev, per_step)})
        if val_batch is not None else None,
        monitor="val_loss" if val_batch is not None else None, better=_better_loss,
        amp=bool(model.amp), progress="steps" if model.verbose else None, desc="cnn (dense)")
    model.net_ = net
    set_history(model, fit, steps=True, n_steps=n_steps, first_fallback=False)


@torch.inference_mode()
def _val_loss(net, batch, weight, dev, chunk: int) -> float:
    """Weighted mean loss over all counted centres of the fixed validation crops."""
    net.eval()
    x, y, *context = batch
    num, den = 0.0, 0.0
    for start in range(0, len(x), chunk):
        xb, yb = x[start : start + chunk].to(dev), y[start : start + chunk].to(dev)
        cb = context[0][start : start + chunk].to(dev) if context else None
        logits = net.forward_dense(xb, cb).float()
        ce = torch.nn.functional.cross_entropy(logits, yb, reduction="none", ignore_index=IGNORE)
        keep = yb != IGNORE
        w = weight[yb.clamp(min=0)] if weight is not None else torch.ones_like(ce)
        w = torch.where(keep, w, torch.zeros_like(w))
        num += float((ce * w).sum())
        den += float(w.sum())
    return num / den if den > 0 else math.nan


def fit_dense(model, images, labels) -> None:
    """Check the slices, hold out validation slices and run :func:`train_dense` (the
    body of :meth:`BlockCNNClassifier.fit_dense`; sets ``classes_`` and
    ``n_features_in_`` too)."""
    images = [np.asarray(im, dtype=np.float32) for im in images]
    labels = [np.asarray(lab) for lab in labels]
    if not images or len(images) != len(labels):
        raise ValueError(f"images and labels must be non-empty and of equal length, got "
                         f"{len(images)} and {len(labels)}")
    for k, (im, lab) in enumerate(zip(images, labels, strict=True)):
        if im.ndim != 2 or lab.shape != im.shape:
            raise ValueError(f"slice {k}: image must be 2D and labels of its shape, got "
                             f"{im.shape} and {lab.shape}")
        if not np.issubdtype(lab.dtype, np.integer):
            raise ValueError(f"slice {k}: labels must be ints, got dtype {lab.dtype}")
    model.classes_ = np.unique(np.concatenate([np.unique(lab) for lab in labels]))
    if len(model.classes_) < 2:
        raise ValueError(f"labels hold a single class {model.classes_.tolist()}")
    model.n_features_in_ = int(model.block_size) ** 2 + model._n_context
    index = [np.searchsorted(model.classes_, lab).astype(np.int8) for lab in labels]
    rng = check_random_state(model.random_state)
    seed = int(rng.integers(2**63 - 1))
    n_val = int(math.floor(model.validation_fraction * len(images)))
    order = rng.permutation(len(images))
    if n_val < 1 or len(images) - n_val < 1:
        n_val = 0
    context = None
    if model._n_context:
        # Planes of the whole, un-augmented slice (its body and cell means), once each.
        context = [prepare_context(im, int(model.block_size)) for im in images]
    train, val = (DenseSample([images[i] for i in part], [index[i] for i in part],
                              None if context is None else [context[i] for i in part])
                  for part in (order[n_val:], order[:n_val]))
    model.device_ = select_device(model.device)
    cuda_devices = [model.device_] if model.device_.type == "cuda" else []
    with _torch_threads(model.num_threads), torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)  # dropout's generator, restored after fit
        train_dense(model, train, val if n_val else None, len(model.classes_), rng)
