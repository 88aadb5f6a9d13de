"""The 2.5D U-Net track: ``UNetConfig``, the ``UNetSegmenter`` facade, augmentation.

Data path (training and prediction alike):

1. per-stack intensity normalisation (:func:`gitract.preprocessing.normalize_intensity`,
   percentile clipping to [0, 1]);
2. 2.5D input: each slice with its neighbours at ``offsets`` (by slice number; edge
   slices repeated, the nearest available slice where a number is absent:
   :func:`stack_25d`);
3. resize to ``image_size`` (bilinear; masks nearest neighbour);
4. the net returns one sigmoid per class (multilabel: masks overlap);
5. prediction: probabilities resized back (bilinear) to each stack's own grid, giving
   (S, H, W, C) float32 maps. The model stops there: thresholds, metrics and reports
   belong to the evaluation layer (:func:`gitract.evaluation.evaluate_unet_track`), which
   treats them exactly as the block classifiers' probability maps.

Training uses BCE + soft Dice (:func:`gitract.models.train_torch.bce_dice_loss`), seeded
augmentation (:func:`augment_batch`) and :func:`gitract.models.train_torch.fit_net`.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from gitract.data.record import SliceStack
from gitract.models._device import select_device
from gitract.models._unet_data import (
    check_offsets,
    neighbour_indices,
    prepare_images,
    prepare_masks,
    prepare_volume,
    resize_proba_back,
    stack_25d,
)
from gitract.models.nets._unet import UNet
from gitract.models.train_torch import (
    FitHistory,
    TrainConfig,
    _autocast,
    fit_net,
    load_checkpoint,
    save_checkpoint,
)
from gitract.utils._random import derive_seeds

__all__ = [
    "GPU_CONFIG",
    "UNetConfig",
    "UNetSegmenter",
    "augment_batch",
    "neighbour_indices",
    "stack_25d",
]

_FORMAT = "gitract.UNetSegmenter/1"
#: Threshold-sweep settings that files of earlier versions kept in the model's config;
#: thresholds belong to the evaluation layer now (:mod:`gitract.evaluation`).
_TUNING_KEYS = ("threshold_grid", "min_sizes", "hausdorff_max_side")
MODEL_FILE = "unet.pt"


@dataclass(frozen=True)
class UNetConfig:
    """Everything that defines a U-Net track run (net, data path, training budget).

    Parameters
    ----------
    image_size : int
        Side of the square network grid; divisible by ``2**depth``.
    base_channels, depth, up_mode, dropout
        :class:`gitract.models.nets.UNet` options.
    offsets : tuple of int
        2.5D neighbour offsets by slice number (``len(offsets)`` input channels).
    percentiles : (float, float)
        Per-stack intensity clipping percentiles.
    batch_size : int
    lr, weight_decay, scheduler, monitor, patience, bce_weight, grad_clip
        :class:`gitract.models.train_torch.TrainConfig` options.
    max_steps : int or None
    max_epochs : int or None
        Training budget in optimiser steps and/or epochs (reproducible: a seed gives the
        same weights on any machine of the same kind).
    max_minutes : float or None
        Wall-clock guard; when it fires, ``history_.stopped`` is ``"max_minutes"`` and the
        comparison report says so. Alone it is the budget (machine-dependent).
    augment : bool
        Seeded augmentation of training batches (:func:`augment_batch`).
    hflip, vflip : float
        Flip probabilities (left-right flips are on: organs sit on either side across
        patients less than they vary in shape, and the small data needs the variety;
        up-down flips are off by default).
    rotate, scale, shift : float
        Affine ranges: +-degrees, +-relative scale, +-fraction of the side.
    gamma, brightness, contrast : float
        Intensity ranges: gamma in ``[1/(1+gamma), 1+gamma]``, +-brightness, +-contrast.
    tta : bool
        Average the prediction with that of the left-right flipped input.
    device : str
        ``"auto"`` (cuda -> mps -> cpu) or a torch device name.
    amp : bool
        Mixed precision on CUDA (ignored on the CPU).
    deterministic : bool
        ``torch.use_deterministic_algorithms`` during training.
    num_threads : int or None
        torch intra-op threads during fit and predict (None: leave torch's setting).
    predict_batch_size : int
    loader_workers : int
        DataLoader worker processes reading the prepared training slices (0: in this
        process); the batches, and so the weights, do not depend on it.
    random_state : int
        The single seed (net initialisation, shuffling, augmentation).
    progress : bool
        tqdm progress bars.
    """

    image_size: int = 256
    base_channels: int = 16
    depth: int = 3
    up_mode: str = "transpose"
    dropout: float = 0.0
    offsets: tuple[int, ...] = (-2, 0, 2)
    percentiles: tuple[float, float] = (0.5, 99.5)
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    monitor: str = "val_dice"
    patience: int | None = None
    bce_weight: float = 0.5
    grad_clip: float | None = None
    max_epochs: int | None = 40
    max_minutes: float | None = None
    max_steps: int | None = None
    augment: bool = True
    hflip: float = 0.5
    vflip: float = 0.0
    rotate: float = 15.0
    scale: float = 0.1
    shift: float = 0.0625
    gamma: float = 0.3
    brightness: float = 0.1
    contrast: float = 0.1
    tta: bool = False
    device: str = "auto"
    amp: bool = True
    deterministic: bool = False
    num_threads: int | None = None
    predict_batch_size: int = 8
    loader_workers: int = 0
    random_state: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "offsets", check_offsets(self.offsets))
        object.__setattr__(self, "percentiles", tuple(float(p) for p in self.percentiles))
        for name in ("image_size", "base_channels", "depth", "batch_size", "predict_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.image_size % 2**self.depth:
            raise ValueError(
                f"image_size must be divisible by 2**depth={2**self.depth}, "
                f"got {self.image_size!r}"
            )
        if isinstance(self.loader_workers, bool) or not isinstance(self.loader_workers, int) \
                or self.loader_workers < 0:
            raise ValueError(f"loader_workers must be an int >= 0, got {self.loader_workers!r}")
        for name in ("hflip", "vflip"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)!r}")
        for name in ("rotate", "scale", "shift", "gamma", "brightness", "contrast"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        self.train_config()  # validates the training options

    def train_config(self, **overrides) -> TrainConfig:
        """The :class:`TrainConfig` of this run."""
        kw = {f.name: getattr(self, f.name) for f in fields(TrainConfig) if hasattr(self, f.name)}
        kw.update(overrides)
        return TrainConfig(**kw)

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping) -> UNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming the key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown UNetConfig key(s) {unknown}")
        kw = dict(data)
        for key in ("offsets", "percentiles"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)


#: A larger configuration for a GPU (about 7.8 M parameters, mixed precision).
GPU_CONFIG = UNetConfig(image_size=320, base_channels=32, depth=4, batch_size=16,
                        max_epochs=100, lr=1e-3, device="auto", amp=True)


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def augment_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    *,
    hflip: float = 0.5,
    vflip: float = 0.0,
    rotate: float = 15.0,
    scale: float = 0.1,
    shift: float = 0.0625,
    gamma: float = 0.3,
    brightness: float = 0.1,
    contrast: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips, affine transform and intensity change of a batch, seeded.

    All random numbers come from ``generator`` (a CPU ``torch.Generator``), so a batch
    is augmented the same way on every device. One affine map per sample moves the
    image (bilinear) and its masks (bilinear, then thresholded at 0.5) together; the
    intensity change (gamma, then contrast and brightness, clipped to [0, 1]) is the
    same for all input channels of a sample.

    Parameters
    ----------
    x : tensor of shape (N, K, H, W), float in [0, 1]
    y : tensor of shape (N, C, H, W), float in {0, 1}
    generator : torch.Generator
    hflip, vflip, rotate, scale, shift, gamma, brightness, contrast
        See :class:`UNetConfig`.

    Returns
    -------
    (x, y) : new tensors of the same shapes
    """
    n = x.shape[0]
    dev = x.device
    flip_c = torch.where(torch.rand(n, generator=generator) < hflip, -1.0, 1.0)
    flip_r = torch.where(torch.rand(n, generator=generator) < vflip, -1.0, 1.0)
    angle = _uniform(n, -rotate, rotate, generator) * math.pi / 180.0
    zoom = _uniform(n, 1.0 - scale, 1.0 + scale, generator)
    t_c = _uniform(n, -shift, shift, generator) * 2.0
    t_r = _uniform(n, -shift, shift, generator) * 2.0
    g = torch.exp(_uniform(n, -math.log1p(gamma), math.log1p(gamma), generator))
    c = _uniform(n, 1.0 - contrast, 1.0 + contrast, generator)
    b = _uniform(n, -brightness, brightness, generator)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # affine_grid maps output (col, row) in [-1, 1] to input coordinates.
    theta = torch.stack([
        torch.stack([cos * flip_c, -sin * flip_r, t_c], dim=1),
        torch.stack([sin * flip_c, cos * flip_r, t_r], dim=1),
    ], dim=1).to(dev, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.grid_sample(y, grid.to(y.dtype), mode="bilinear", padding_mode="zeros",
                      align_corners=False)
    y = (y > 0.5).to(y.dtype)
    shape = (n, 1, 1, 1)
    x = x.clamp(0.0, 1.0) ** g.view(shape).to(dev, x.dtype)
    x = x * c.view(shape).to(dev, x.dtype) + b.view(shape).to(dev, x.dtype)
    return x.clamp(0.0, 1.0), y


class _Threads:
    def __init__(self, n: int | None) -> None:
        self.n, self.old = n, None

    def __enter__(self) -> None:
        if self.n is not None:
            self.old = torch.get_num_threads()
            torch.set_num_threads(int(self.n))

    def __exit__(self, *exc) -> None:
        if self.old is not None:
            torch.set_num_threads(self.old)


class SliceFiles(Dataset):
    """(input, target) slices of prepared per-stack ``.npy`` files: a (S, rows, cols)
    volume, (S, C, rows, cols) uint8 masks and the (S, K) 2.5D neighbour positions. Each
    item reads its channels through a memory map (the pages are released with the map)."""

    def __init__(self, files: Sequence[tuple[str, str, NDArray]]) -> None:
        self.files = list(files)
        self.starts = np.cumsum([0] + [len(n) for _, _, n in self.files])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int):
        f = int(np.searchsorted(self.starts, i, side="right") - 1)
        x_path, y_path, neighbours = self.files[f]
        j = i - int(self.starts[f])
        x = np.array(np.load(x_path, mmap_mode="r")[neighbours[j]], dtype=np.float32)
        y = np.array(np.load(y_path, mmap_mode="r")[j], dtype=np.float32)
        return torch.from_numpy(x), torch.from_numpy(y)


def _check_stacks(stacks: Sequence[SliceStack], name: str, *, labelled: bool) -> tuple[str, ...]:
    if isinstance(stacks, SliceStack) or not stacks:
        raise ValueError(f"{name} must be a non-empty list of SliceStack, got {stacks!r:.80}")
    classes = stacks[0].classes
    for s in stacks:
        if not isinstance(s, SliceStack):
            raise TypeError(f"{name} must hold SliceStack objects, got {type(s).__name__}")
        if labelled and s.masks is None:
            raise ValueError(f"{name}: stack {s.key!r} has no masks")
        if s.classes != classes:
            raise ValueError(f"{name}: stack {s.key!r} classes {s.classes} != {classes}")
    return tuple(classes)


class UNetSegmenter:
    """Estimator-like facade of the 2.5D U-Net track.

    Parameters
    ----------
    config : UNetConfig, optional
    **overrides
        Replace single fields of ``config`` (``UNetSegmenter(max_epochs=5)``).

    Attributes
    ----------
    net_ : UNet
        The trained net (eval mode, on ``device_``).
    classes_ : tuple of str
    history_ : FitHistory
    fit_seconds_ : float
        Wall-clock seconds of :meth:`fit` (data preparation included).
    n_train_slices_ : int

    Examples
    --------
    >>> seg = UNetSegmenter(max_epochs=1, base_channels=4, depth=2, image_size=32)
    >>> seg.config.max_epochs
    1
    """

    def __init__(self, config: UNetConfig | None = None, **overrides) -> None:
        config = UNetConfig() if config is None else config
        if not isinstance(config, UNetConfig):
            raise TypeError(f"config must be a UNetConfig, got {type(config).__name__}")
        self.config = replace(config, **overrides) if overrides else config

    # ------------------------------------------------------------------ data
    def _inputs(self, stack: SliceStack) -> NDArray[np.float32]:
        c = self.config
        return prepare_images(stack.image, stack.slice_numbers, offsets=c.offsets,
                              image_size=c.image_size, percentiles=c.percentiles)

    def _prepare_files(self, stacks, folder: Path, name: str):
        """Write each stack's prepared inputs and targets to ``folder`` (one pair of
        ``.npy`` files per stack); ``stacks`` may be SliceStacks or sources with a
        ``read()`` method, read here one at a time. Returns ``(files, classes)``."""
        if isinstance(stacks, SliceStack) or not isinstance(stacks, Sequence) or not stacks:
            raise ValueError(f"{name} must be a non-empty list of SliceStack, got {stacks!r:.80}")
        folder.mkdir(parents=True, exist_ok=True)
        files, classes = [], None
        for i, item in enumerate(stacks):
            stack = item.read() if hasattr(item, "read") else item
            if not isinstance(stack, SliceStack):
                raise TypeError(f"{name} must hold SliceStack objects, got {type(stack).__name__}")
            if stack.masks is None:
                raise ValueError(f"{name}: stack {stack.key!r} has no masks")
            if classes is None:
                classes = tuple(stack.classes)
            elif tuple(stack.classes) != classes:
                raise ValueError(f"{name}: stack {stack.key!r} classes {stack.classes} != {classes}")
            # One channel per slice (2.5D neighbours are picked per item) and uint8 masks:
            # exactly the arrays of prepare_images / prepare_masks, a quarter of the disk.
            x_path, y_path = folder / f"{i}_x.npy", folder / f"{i}_y.npy"
            np.save(x_path, prepare_volume(stack.image, image_size=self.config.image_size,
                                           percentiles=self.config.percentiles))
            np.save(y_path, prepare_masks(stack.masks, image_size=self.config.image_size)
                    .astype(np.uint8))
            neighbours = neighbour_indices(stack.slice_numbers, offsets=self.config.offsets)
            files.append((str(x_path), str(y_path), neighbours))
        if classes is None:
            raise ValueError(f"{name} must be a non-empty list of SliceStack, got {stacks!r:.80}")
        return files, classes

    def _make_net(self, n_classes: int, seed: int) -> UNet:
        c = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return UNet(len(c.offsets), n_classes, c.base_channels, c.depth,
                        up_mode=c.up_mode, dropout=c.dropout)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train_stacks: Sequence[SliceStack],
        val_stacks: Sequence[SliceStack] | None = None,
    ) -> UNetSegmenter:
        """Train on labelled stacks; ``val_stacks`` select the checkpoint kept.

        Both may hold :class:`SliceStack` objects or scan sources (anything with a
        ``read() -> SliceStack`` method, e.g. :class:`gitract.data.index.ScanSource`): each
        is read once, prepared to disk and dropped, and training reads slices from there.

        Returns
        -------
        self
        """
        t0 = time.perf_counter()
        c = self.config
        seed_init, seed_shuffle, seed_fit = derive_seeds(int(c.random_state), 3)
        with tempfile.TemporaryDirectory(prefix="gitract-unet-") as work:
            # Each scan is read, prepared and written to disk, then dropped; the loaders
            # read one slice at a time, so memory does not grow with the training set.
            train_files, classes = self._prepare_files(train_stacks, Path(work) / "train",
                                                       "train_stacks")
            train_loader = DataLoader(
                SliceFiles(train_files), batch_size=c.batch_size, shuffle=True,
                generator=torch.Generator().manual_seed(int(seed_shuffle)),
                num_workers=c.loader_workers)
            val_loader = None
            if val_stacks:
                val_files, val_classes = self._prepare_files(val_stacks, Path(work) / "val",
                                                             "val_stacks")
                if val_classes != classes:
                    raise ValueError("val_stacks classes differ from train_stacks classes")
                val_loader = DataLoader(SliceFiles(val_files), batch_size=c.predict_batch_size,
                                        shuffle=False, num_workers=c.loader_workers)
            augment = None
            if c.augment:
                opts = {k: getattr(c, k) for k in ("hflip", "vflip", "rotate", "scale", "shift",
                                                   "gamma", "brightness", "contrast")}

                def augment(xb, yb, gen):
                    return augment_batch(xb, yb, gen, **opts)

            net = self._make_net(len(classes), seed_init)
            with _Threads(c.num_threads):
                history = fit_net(net, train_loader, val_loader,
                                  config=c.train_config(random_state=seed_fit), augment=augment)
        self.net_ = net
        self.device_ = next(net.parameters()).device
        self.classes_ = classes
        self.history_ = history
        self.n_train_slices_ = int(sum(len(n) for _, _, n in train_files))
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise RuntimeError("this UNetSegmenter is not fitted yet; call fit() or load()")

    @torch.no_grad()
    def predict_proba_stack(self, stack: SliceStack) -> NDArray[np.float32]:
        """Per-class probabilities of one stack on its original grid.

        Parameters
        ----------
        stack : SliceStack
            Masks are not needed.

        Returns
        -------
        ndarray of shape (S, H, W, C), dtype float32, values in [0, 1]
            ``C = len(classes_)``; (H, W) = ``stack.shape``.
        """
        self._check_fitted()
        c = self.config
        x = self._inputs(stack)
        net, dev = self.net_, self.device_
        net.eval()
        out = np.empty((x.shape[0], len(self.classes_), *x.shape[2:]), dtype=np.float32)
        use_amp = c.amp and dev.type == "cuda"
        with _Threads(c.num_threads):
            for i in range(0, x.shape[0], c.predict_batch_size):
                xb = torch.from_numpy(x[i:i + c.predict_batch_size]).to(dev)
                with _autocast(dev, use_amp):
                    p = torch.sigmoid(net(xb).float())
                    if c.tta:
                        p = 0.5 * (p + torch.sigmoid(net(xb.flip(-1)).float()).flip(-1))
                out[i:i + xb.shape[0]] = p.cpu().numpy()
        return resize_proba_back(out, stack.shape)

    def predict_stacks(self, stacks: Sequence[SliceStack]) -> dict[str, NDArray[np.float32]]:
        """``{stack.key: predict_proba_stack(stack)}`` for every stack."""
        _check_stacks(stacks, "stacks", labelled=False)
        return {s.key: self.predict_proba_stack(s) for s in stacks}

    # ------------------------------------------------------------------ persistence
    def model_bytes(self) -> int:
        """Size of the serialised weights in bytes."""
        self._check_fitted()
        buf = io.BytesIO()
        torch.save(self.net_.state_dict(), buf)
        return buf.tell()

    def _payload(self) -> dict:
        return {
            "format": _FORMAT,
            "config": self.config.to_dict(),
            "classes": list(self.classes_),
            "state_dict": {k: v.detach().cpu() for k, v in self.net_.state_dict().items()},
            "history": self.history_.to_dict(),
            "fit_seconds": float(self.fit_seconds_),
            "n_train_slices": int(self.n_train_slices_),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to one file (a folder gets ``unet.pt`` inside), atomically."""
        self._check_fitted()
        path = Path(path)
        if path.is_dir() or not path.suffix:
            path = path / MODEL_FILE
        return save_checkpoint(path, self._payload())

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | None = None) -> UNetSegmenter:
        """Read a model written by :meth:`save` (a file, or the folder holding ``unet.pt``).

        Parameters
        ----------
        device : str, optional
            Override the saved ``config.device`` (e.g. ``"cpu"``).
        """
        path = Path(path)
        if path.is_dir():
            path = path / MODEL_FILE
        payload = load_checkpoint(path)
        if payload.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a UNetSegmenter file (format {payload.get('format')!r})")
        saved = {k: v for k, v in payload["config"].items() if k not in _TUNING_KEYS}
        config = UNetConfig.from_dict(saved)
        if device is not None:
            config = replace(config, device=device)
        seg = cls(config)
        net = seg._make_net(len(payload["classes"]), 0)
        net.load_state_dict(payload["state_dict"])
        dev = select_device(config.device)
        seg.net_ = net.to(dev).eval()
        seg.device_ = dev
        seg.classes_ = tuple(payload["classes"])
        seg.history_ = FitHistory.from_dict(payload["history"])
        seg.fit_seconds_ = float(payload["fit_seconds"])
        seg.n_train_slices_ = int(payload["n_train_slices"])
        return seg
