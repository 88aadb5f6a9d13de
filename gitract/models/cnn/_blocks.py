"""Training of the block CNN on a sample of blocks (:meth:`BlockCNNClassifier.fit`).

Epochs over the sampled blocks, each mini-batch flipped / turned (and its intensity
changed) on the fly, early stopping on held-out blocks; the dense counterpart is
:mod:`gitract.models.cnn._dense`.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm.auto import tqdm

from gitract.models.cnn._dihedral import _augment, _augment_intensity

__all__ = ["Rows", "train_blocks"]


class Rows(NamedTuple):
    """Rows ``rows`` of the sample ``X``, used in place of the copy ``X[rows]``."""

    X: NDArray[np.float32]
    rows: NDArray[np.int64]


def train_blocks(model, X_tr, y_tr, X_va, y_va, n_classes: int, rng: np.random.Generator) -> None:
    """The sampled-block training loop (epochs, early stopping on ``X_va``); sets
    ``net_``, ``history_``, ``best_epoch_``, ``n_epochs_`` and ``n_steps_`` on ``model`` (a
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
    opt = torch.optim.AdamW(net.parameters(), lr=float(model.lr), weight_decay=float(model.weight_decay))
    use_amp = bool(model.amp) and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    bs, n_px = int(model.block_size), int(model.block_size) ** 2
    rows = X_tr.rows if isinstance(X_tr, Rows) else None
    Xt = torch.from_numpy(X_tr.X if rows is not None else X_tr)
    rows_t = None if rows is None else torch.from_numpy(rows)
    yt = torch.from_numpy(y_tr.astype(np.int64))
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    best_loss, best_state, best_epoch, bad = math.inf, None, 0, 0
    n_steps = 0
    epochs = tqdm(range(int(model.max_epochs)), desc="cnn", unit="epoch", disable=not model.verbose)
    for epoch in epochs:
        net.train()
        perm = torch.randperm(len(yt), generator=gen)
        total, count = 0.0, 0
        for start in range(0, len(perm), int(model.batch_size)):
            idx = perm[start : start + int(model.batch_size)]
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
            xb, yb = xb.to(dev, non_blocking=True), yt[idx].to(dev, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                loss = loss_fn(net(xb, cb), yb)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            n_steps += 1
        history["train_loss"].append(total / max(count, 1))
        if X_va is not None:
            val = model._eval_loss(net, X_va, y_va, loss_fn)
            history["val_loss"].append(val)
            epochs.set_postfix(train=history["train_loss"][-1], val=val)
            if val < best_loss - 1e-7:
                best_loss, best_epoch, bad = val, epoch, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                bad += 1
                if bad >= int(model.early_stopping_patience):
                    break
        else:
            best_epoch = epoch
    if best_state is not None:
        net.load_state_dict(best_state)
    model.net_ = net.eval()
    model.history_ = history
    model.best_epoch_ = best_epoch
    model.n_epochs_ = len(history["train_loss"])
    model.n_steps_ = n_steps
