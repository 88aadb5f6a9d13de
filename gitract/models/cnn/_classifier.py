"""The :class:`BlockCNNClassifier` estimator: parameters, validation, fit and predict."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from gitract.features import context_maps, context_names
from gitract.models._device import select_device
from gitract.models.cnn._blocks import Rows, train_blocks
from gitract.models.cnn._dense import fit_dense
from gitract.models.cnn._persistence import _PersistenceMixin
from gitract.models.cnn._threads import _torch_threads
from gitract.models.nets import SmallBlockCNN, to_dense
from gitract.utils import check_random_state

__all__ = ["BlockCNNClassifier"]


class BlockCNNClassifier(_PersistenceMixin, ClassifierMixin, BaseEstimator):
    """Small CNN classifying square image blocks by their centre pixel.

    Parameters
    ----------
    block_size : int, default=33
        Odd side of the blocks; ``X`` has ``block_size**2`` features (plus the context
        columns with ``context_features``).
    channels : sequence of int, default=(16, 32, 64)
        Convolution stages of :class:`SmallBlockCNN`.
    hidden : int, default=64
        Width of the hidden dense layer.
    dropout : float, default=0.3
        Dropout before the last dense layer.
    centre_features : bool, default=False
        Also feed the head the centre of the last feature map (where in the block a
        pattern lies, which the global average alone blurs; see :class:`SmallBlockCNN`).
    context_features : bool, default=False
        Also feed the head the block's context (late fusion): its position in the body
        and the means of the block-sized cells around it
        (:func:`gitract.features.context_names`, K = 15 values), which a block's pixels
        do not hold. :meth:`fit_dense` and :meth:`predict_proba_dense` compute them from
        the slice; in :meth:`fit` / :meth:`predict_proba` they are the last K columns of
        ``X`` (``RawBlockFeaturizer(context=True)``). Geometric augmentation turns the
        block, not its context.
    max_epochs : int, default=20
        Upper bound on training epochs.
    batch_size : int, default=256
        Mini-batch size (training and block-wise inference).
    lr : float, default=1e-3
        AdamW learning rate.
    weight_decay : float, default=1e-4
        AdamW weight decay.
    class_weight : "balanced", dict or None, default="balanced"
        Loss weights against class imbalance: ``n / (n_classes * count)`` for
        "balanced", ``{label: weight}`` (missing labels weigh 1), or none.
    validation_fraction : float, default=0.15
        Share of ``X`` held out for early stopping when ``X_val`` is not given; 0 turns
        early stopping off.
    early_stopping_patience : int, default=3
        Epochs without a lower validation loss before stopping; the best epoch's
        weights are kept.
    device : str, default="auto"
        ``"auto"`` (cuda, then mps, then cpu) or an explicit torch device name.
    amp : bool, default=True
        Mixed precision training, used only on CUDA.
    augment : bool, default=True
        Random flips / 90-degree turns of training blocks (of crops and their labels in
        dense training).
    intensity_augment : bool, default=False
        Random gamma, contrast, brightness and noise on training blocks or crops.
    max_steps : int or None, default=None
        Dense training (:meth:`fit_dense`): optimiser steps; None: ``max_epochs`` times
        the steps that draw one crop per training slice.
    crop_size : int, default=96
        Dense training: side of the square crops of block centres (each step trains on
        ``crop_size**2`` blocks per crop).
    crops_per_step : int, default=4
        Dense training: crops per optimiser step.
    foreground_fraction : float, default=0.5
        Dense training: share of crops centred on an organ pixel (the rest anywhere).
    max_rotation : float, default=0.0
        Dense training: crops (and their labels) are rotated by a random angle in
        ``[-max_rotation, max_rotation]`` degrees about their centre, read from a wider
        crop so the corners hold real pixels (0: no rotation).
    max_scale : float, default=0.0
        Dense training: and zoomed by a random factor in ``[1 - max_scale, 1 + max_scale]``
        (0: no scaling).
    background_fraction : float, default=1.0
        Dense training: share of background centres that count in each step's loss (a
        fresh random subset per step).
    num_threads : int or None, default=None
        torch intra-op threads during fit/predict (``None``: torch's setting).
    random_state : int, numpy Generator or None, default=None
        Seeds initialisation, the validation split, shuffling, augmentation and dropout;
        on CPU two fits with the same int give identical outputs.
    verbose : bool, default=False
        Show a tqdm progress bar over epochs.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    net_ : SmallBlockCNN
        The trained net (eval mode) on ``device_``.
    device_ : torch.device
    history_ : dict
        ``{"train_loss": [...], "val_loss": [...]}`` per epoch.
    best_epoch_ : int
        Epoch (0-based) whose weights were kept.
    n_epochs_ : int
        Epochs run.
    """

    # Pickles name the public path: the same bytes as before the module was split (the
    # reported model size is a pickle's length), and unaffected by private file names.
    __module__ = "gitract.models.cnn"

    def __init__(
        self,
        block_size: int = 33,
        *,
        channels: Sequence[int] = (16, 32, 64),
        hidden: int = 64,
        dropout: float = 0.3,
        centre_features: bool = False,
        context_features: bool = False,
        max_epochs: int = 20,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        class_weight: str | None = "balanced",
        validation_fraction: float = 0.15,
        early_stopping_patience: int = 3,
        device: str = "auto",
        amp: bool = True,
        augment: bool = True,
        intensity_augment: bool = False,
        max_steps: int | None = None,
        crop_size: int = 96,
        crops_per_step: int = 4,
        foreground_fraction: float = 0.5,
        max_rotation: float = 0.0,
        max_scale: float = 0.0,
        background_fraction: float = 1.0,
        num_threads: int | None = None,
        random_state: int | np.random.Generator | None = None,
        verbose: bool = False,
    ) -> None:
        self.block_size = block_size
        self.channels = channels
        self.hidden = hidden
        self.dropout = dropout
        self.centre_features = centre_features
        self.context_features = context_features
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.device = device
        self.amp = amp
        self.augment = augment
        self.intensity_augment = intensity_augment
        self.max_steps = max_steps
        self.crop_size = crop_size
        self.crops_per_step = crops_per_step
        self.foreground_fraction = foreground_fraction
        self.max_rotation = max_rotation
        self.max_scale = max_scale
        self.background_fraction = background_fraction
        self.num_threads = num_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        bs = self.block_size
        if isinstance(bs, bool) or not isinstance(bs, (int, np.integer)) or bs < 3 or bs % 2 == 0:
            raise ValueError(f"block_size must be an odd int >= 3, got {bs!r}")
        for name in ("max_epochs", "batch_size", "hidden", "crop_size", "crops_per_step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}"
            )
        ms = self.max_steps
        if ms is not None and (isinstance(ms, bool) or not isinstance(ms, (int, np.integer)) or ms < 1):
            raise ValueError(f"max_steps must be a positive int or None, got {ms!r}")
        if not 0.0 <= float(self.foreground_fraction) <= 1.0:
            raise ValueError(
                f"foreground_fraction must be in [0, 1], got {self.foreground_fraction!r}"
            )
        if not 0.0 <= float(self.max_rotation) <= 45.0:
            raise ValueError(f"max_rotation must be in [0, 45] degrees, got {self.max_rotation!r}")
        if not 0.0 <= float(self.max_scale) < 0.5:
            raise ValueError(f"max_scale must be in [0, 0.5), got {self.max_scale!r}")
        if not 0.0 < float(self.background_fraction) <= 1.0:
            raise ValueError(
                f"background_fraction must be in (0, 1], got {self.background_fraction!r}"
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not (self.class_weight in ("balanced", None) or isinstance(self.class_weight, dict)):
            raise ValueError(
                f"class_weight must be 'balanced', a dict or None, got {self.class_weight!r}"
            )
        if not isinstance(self.context_features, (bool, np.bool_)):
            raise ValueError(f"context_features must be a bool, got {self.context_features!r}")
        if self.early_stopping_patience < 1:
            raise ValueError(
                f"early_stopping_patience must be >= 1, got {self.early_stopping_patience!r}"
            )

    @property
    def _n_context(self) -> int:
        """Context values per block (0 without ``context_features``)."""
        return len(context_names()) if self.context_features else 0

    def _check_X(self, X, y=None, *, reset: bool, name: str = "X"):
        """Validate blocks (n, bs*bs + K) or (n, bs, bs) -> float32 (n, bs*bs + K) (and
        ``y``); K context columns with ``context_features``."""
        bs, k = int(self.block_size), self._n_context
        shape = getattr(X, "shape", None)
        if k and shape is not None and len(shape) == 3:
            raise ValueError(f"{name} must be 2D (n, block_size**2 + {k}) with "
                             f"context_features=True, got shape {tuple(shape)}")
        if shape is not None and len(shape) == 3 and not hasattr(X, "tocsr"):
            if tuple(shape[1:]) != (bs, bs):
                raise ValueError(f"{name} blocks must be {bs}x{bs}, got shape {tuple(shape)}")
            X = np.asarray(X).reshape(shape[0], bs * bs)
        kwargs = {"dtype": np.float32, "order": "C"}
        if y is None:
            X = validate_data(self, X, reset=reset, **kwargs)
        else:
            X, y = validate_data(self, X, y, reset=reset, **kwargs)
        if X.shape[1] != bs * bs + k:
            needs = f"{bs * bs}" if not k else f"{bs * bs} + {k} context columns"
            raise ValueError(
                f"{name} has {X.shape[1]} features, but block_size={bs} needs {needs}"
            )
        return X if y is None else (X, y)

    # ------------------------------------------------------------------ training
    def _make_net(self, n_classes: int) -> SmallBlockCNN:
        return SmallBlockCNN(
            int(self.block_size),
            n_classes,
            tuple(self.channels),
            hidden=int(self.hidden),
            dropout=float(self.dropout),
            centre_features=bool(self.centre_features),
            n_context=self._n_context,
        )

    def fit(self, X, y, X_val=None, y_val=None) -> BlockCNNClassifier:
        """Train on blocks ``X`` (n, bs*bs) with centre classes ``y`` (n,).

        Parameters
        ----------
        X : array-like of shape (n, block_size**2) or (n, block_size, block_size)
            Raw blocks; with ``context_features`` (n, block_size**2 + K): the pixels, then
            the block's context values.
        y : array-like of shape (n,)
        X_val, y_val : optional validation blocks; otherwise ``validation_fraction`` of
            ``X`` is held out (when at least one sample per side remains).

        Returns
        -------
        self
        """
        self._check_params()
        X, y = self._check_X(X, y, reset=True)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)

        rng = check_random_state(self.random_state)
        seed = int(rng.integers(2**63 - 1))
        if X_val is not None:
            X_va = self._check_X(X_val, reset=False, name="X_val")
            y_val = np.asarray(y_val).ravel()
            if y_val.shape[0] != X_va.shape[0] or not np.isin(y_val, self.classes_).all():
                raise ValueError("y_val must hold one label of classes_ per row of X_val")
            y_va = np.searchsorted(self.classes_, y_val)
            X_tr, y_tr = X, y_idx
        else:
            n_val = int(math.floor(self.validation_fraction * X.shape[0]))
            if n_val >= 1 and X.shape[0] - n_val >= 1:
                order = rng.permutation(X.shape[0])
                X_va, y_va = X[order[:n_val]], y_idx[order[:n_val]]
                # The training rows stay in X (no copy of the sample): batches index it.
                X_tr, y_tr = Rows(X, order[n_val:]), y_idx[order[n_val:]]
            else:
                X_va = y_va = None
                X_tr, y_tr = X, y_idx

        self.device_ = select_device(self.device)
        cuda_devices = [self.device_] if self.device_.type == "cuda" else []
        with _torch_threads(self.num_threads), torch.random.fork_rng(devices=cuda_devices):
            # fork_rng restores the global torch RNG afterwards: the seed stays local to fit
            # (dropout draws from the global generator).
            torch.manual_seed(seed)
            train_blocks(self, X_tr, y_tr, X_va, y_va, n_classes, rng)
        return self

    def fit_dense(self, images, labels) -> BlockCNNClassifier:
        """Train on every block centred in whole slices (dense training).

        Each optimiser step cuts ``crops_per_step`` random square crops of
        ``crop_size`` centres from the slices (padded by reflection like the blocks),
        augments them with their labels and minimises the class-weighted cross-entropy
        over all their centres in one fully convolutional pass of the same net that
        :meth:`fit` trains (see :mod:`gitract.models.cnn._dense`). ``validation_fraction``
        of the slices (seeded) is held out: a fixed set of crops whose loss is recorded
        ``N_EVALUATIONS`` times, the best point's weights are kept.

        With ``context_features`` each slice's context
        (:func:`gitract.features.context_maps`) is computed here, on the whole slice,
        and cropped with its labels.

        Parameters
        ----------
        images : sequence of ndarray of shape (H, W)
            Normalised slices (cast to float32); sizes may differ.
        labels : sequence of ndarray of shape (H, W), int
            The class (``y`` in :meth:`fit`) of the block centred at each pixel; the
            smallest label is the background (0 in the dominant-class scheme): crops are
            centred on the others, ``background_fraction`` thins it.

        Returns
        -------
        self
        """
        self._check_params()
        fit_dense(self, images, labels)
        return self

    @torch.inference_mode()
    def _eval_loss(self, net, X, y, loss_fn) -> float:
        net.eval()
        logits = self._logits(net, X)
        return float(loss_fn(logits, torch.from_numpy(y.astype(np.int64)).to(logits.device)))

    def _logits(self, net, X: NDArray[np.float32]) -> torch.Tensor:
        bs, n_px = int(self.block_size), int(self.block_size) ** 2
        # Chunks of at most 256 blocks: the first layers' activations of a larger chunk
        # (16+ channels x block pixels) would outweigh the whole training sample.
        step = max(int(self.batch_size), 256)
        out = []
        for start in range(0, X.shape[0], step):
            chunk = torch.from_numpy(X[start : start + step])
            xb = chunk[:, :n_px].reshape(-1, 1, bs, bs)
            cb = chunk[:, n_px:].to(self.device_) if self._n_context else None
            out.append(net(xb.to(self.device_), cb))
        return torch.cat(out)

    # ------------------------------------------------------------------ inference
    def predict_proba(self, X) -> NDArray[np.float32]:
        """Class probabilities (n, n_classes) float32, columns ordered like ``classes_``."""
        check_is_fitted(self, "net_")
        X = self._check_X(X, reset=False)
        with _torch_threads(self.num_threads), torch.inference_mode():
            self.net_.eval()
            proba = torch.softmax(self._logits(self.net_, X).float(), dim=1)
        return proba.cpu().numpy().astype(np.float32, copy=False)

    def predict(self, X) -> NDArray:
        """Most probable class of each block."""
        check_is_fitted(self, "net_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def predict_proba_dense(self, image) -> NDArray[np.float32]:
        """Probability of the block centred at every pixel, from one dense pass.

        Parameters
        ----------
        image : ndarray of shape (H, W)
            Float image (cast to float32), padded by reflection like the blocks (with
            ``context_features`` its context maps are computed from it).

        Returns
        -------
        proba : ndarray of shape (H, W, n_classes), dtype float32
            ``proba[r, c]`` equals ``predict_proba`` of the reflect-padded block centred at
            ``(r, c)`` (float32 rounding aside), columns ordered like ``classes_``.
        """
        check_is_fitted(self, "net_")
        image = np.asarray(image)
        if image.ndim != 2:
            raise ValueError(f"image must be 2D (H, W), got shape {image.shape}")
        if not np.issubdtype(image.dtype, np.number):
            raise ValueError(f"image must be numeric, got dtype {image.dtype}")
        pad = int(self.block_size) // 2
        # numpy's "reflect" (no edge repeat) matches the block extraction and, unlike
        # torch's reflect pad, also works when the image is smaller than the padding.
        image = image.astype(np.float32, copy=False)
        padded = np.pad(image, pad, mode="reflect")
        context = None
        if self._n_context:
            context = torch.from_numpy(context_maps(image, int(self.block_size)))[None]
        with _torch_threads(self.num_threads), torch.inference_mode():
            dense = self._dense_net()
            x = torch.from_numpy(padded)[None, None].to(self.device_)
            if context is not None:
                context = context.to(self.device_)
            proba = torch.softmax(dense(x, context)[0].float(), dim=0)
            out = proba.permute(1, 2, 0).contiguous().cpu().numpy()
        return out.astype(np.float32, copy=False)

    def _dense_net(self):
        cached = getattr(self, "_dense_cache", None)
        if cached is None or cached[0] is not self.net_:
            cached = (self.net_, to_dense(self.net_.eval()))
            self._dense_cache = cached
        return cached[1]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.non_deterministic = self.random_state is None
        return tags
