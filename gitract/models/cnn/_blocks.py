"""Training of the block CNN on a sample of blocks (:meth:`BlockCNNClassifier.fit`).

Epochs over the sampled blocks, each mini-batch flipped / turned (and its intensity
changed) on the fly, early stopping on held-out blocks; the dense counterpart is
:mod:`gitract.models.cnn._dense`. Both run on the one torch training loop
(:func:`gitract.models.train_torch.run_training`) and keep only how a batch is drawn, the
loss and the validation loss.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray

from gitract.models.cnn._dihedral import _augment, _augment_intensity
from gitract.models.train_torch import FitHistory, run_training

__all__ = ["Rows", "set_history", "train_blocks"]


class Rows(NamedTuple):
    """Rows ``rows`` of the sample ``X``, used in place of the copy ``X[rows]``."""

    X: NDArray[np.float32]
    rows: NDArray[np.int64]


def _better_loss(value: float, best: float | None) -> bool:
    """A validation loss lower than the best by more than 1e-7 (NaN never is)."""
    return value < (math.inf if best is None else best) - 1e-7


def set_history(model, fit: FitHistory, *, steps: bool, n_steps: int, first_fallback: bool) -> None:
    """The fitted attributes of a :class:`BlockCNNClassifier` from the loop's record:
    ``history_`` (``train_loss`` and ``val_loss`` per evaluation, with ``step`` first in
    dense training), ``best_epoch_`` (0-based: the restored one; without one the first
    (``first_fallback``) or the last), ``n_epochs_`` and ``n_steps_``."""
    history: dict[str, list[float]] = {"step": []} if steps else {}
    history.update(train_loss=[], val_loss=[])
    for record in fit.epochs:
        if steps:
            history["step"].append(float(record["step"]))
        history["train_loss"].append(record["train_loss"])
        if "val_loss" in record:
            history["val_loss"].append(record["val_loss"])
    n = len(fit.epochs)
    if fit.best_epoch is not None:
        best = fit.best_epoch - 1
    else:
        best = 0 if first_fallback and history["val_loss"] else n - 1
    model.history_ = history
    model.best_epoch_ = best
    model.n_epochs_ = n
    model.n_steps_ = n_steps


def train_blocks(model, X_tr, y_tr, X_va, y_va, n_classes: int, rng: np.random.Generator) -> None:
    """Sampled-block training on :func:`~gitract.models.train_torch.run_training` (epochs
    over a seeded permutation, early stopping on ``X_va``); sets ``net_``, ``history_``,
    ``best_epoch_``, ``n_epochs_`` and ``n_steps_`` on ``model`` (a
    :class:`BlockCNNClassifier` in ``fit``). ``X_tr`` may be :class:`Rows` of the sample."""
    dev = model.device_
    net = model._make_net(n_classes).to(dev)
    gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
    weight = None
    if isinstance(model.class_weight, dict):
        w = np.array([float(model.class_weight.get(c, 1.0)) for c in model.classes_.tolist()])
        weight = torch.as_tensor(w, dtype=torch.float32, device=dev)
    elif model.class_weight == "balanced":
        counts = np.bincount(y_tr, minlength=n_classes).astype(np.float64)
        w = np.where(counts > 0, len(y_tr) / (n_classes * np.maximum(counts, 1)), 0.0)
        weight = torch.as_tensor(w, dtype=torch.float32, device=dev)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    bs, n_px = int(model.block_size), int(model.block_size) ** 2
    rows = X_tr.rows if isinstance(X_tr, Rows) else None
    Xt = torch.from_numpy(X_tr.X if rows is not None else X_tr)
    rows_t = None if rows is None else torch.from_numpy(rows)
    yt = torch.from_numpy(y_tr.astype(np.int64))
    batch_size = int(model.batch_size)

    def batches(epoch: int):
        perm = torch.randperm(len(yt), generator=gen)
        for start in range(0, len(perm), batch_size):
            idx = perm[start : start + batch_size]
            if len(idx) < 2 and len(perm) >= 2:
                continue  # a lone last sample would give batch norm a 1-sample batch
            batch = Xt[idx if rows_t is None else rows_t[idx]]
            # Only the pixels are augmented: the context stays the block's own.
            xb = batch[:, :n_px].reshape(-1, 1, bs, bs)
            cb = batch[:, n_px:].to(dev, non_blocking=True) if model._n_context else None
            if model.augment:
                xb = _augment(xb, gen)
            if model.intensity_augment:
                xb = _augment_intensity(xb, gen)
            yield xb.to(dev, non_blocking=True), cb, yt[idx].to(dev, non_blocking=True)

    def step_loss(net, batch):
        xb, cb, yb = batch
        return loss_fn(net(xb, cb), yb), len(yb)

    validate = X_va is not None
    fit = run_training(
        net, batches, step_loss, device=dev, lr=float(model.lr),
        weight_decay=float(model.weight_decay), max_epochs=int(model.max_epochs),
        evaluate=(lambda net: {"val_loss": model._eval_loss(net, X_va, y_va, loss_fn)})
        if validate else None,
        monitor="val_loss" if validate else None, better=_better_loss,
        patience=int(model.early_stopping_patience), amp=bool(model.amp),
        progress="epochs" if model.verbose else None, desc="cnn")
    model.net_ = net
    set_history(model, fit, steps=False, n_steps=fit.steps, first_fallback=True)
