"""The estimator-like facade of the U-Net track (:class:`UNetSegmenter`): fit, predict, save."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader, DistributedSampler

from gitract.data.record import SliceStack
from gitract.models._device import select_device
from gitract.models._unet_data import network_grid, prepare_images, resize_proba_back
from gitract.models.nets import DeepLabV3Plus, UNet, UNetPlusPlus, aspp_rates
from gitract.models.train_torch import (
    FitHistory,
    ValVolume,
    VolumeScore,
    autocast,
    broadcast_object,
    fit_net,
    load_checkpoint,
    save_checkpoint,
    world,
)
from gitract.models.unet._augment import augment_batch
from gitract.models.unet._config import UNetConfig
from gitract.models.unet._slice_files import PadCollate, SliceFiles, prepare_files
from gitract.preprocessing import crop_pads, pad_to_multiple
from gitract.utils import derive_seeds

__all__ = ["MODEL_FILE", "UNetSegmenter"]

_FORMAT = "gitract.UNetSegmenter/1"
#: Threshold-sweep settings that files of earlier versions kept in the model's config;
#: thresholds belong to the evaluation layer now (:mod:`gitract.evaluation`).
_TUNING_KEYS = ("threshold_grid", "min_sizes", "hausdorff_max_side")
MODEL_FILE = "unet.pt"


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
    """Estimator-like facade of the 2.5D U-Net track (and its U-Net++ and DeepLabV3+).

    Parameters
    ----------
    config : UNetConfig, optional
    **overrides
        Replace single fields of ``config`` (``UNetSegmenter(max_epochs=5)``).

    Attributes
    ----------
    net_ : UNet, UNetPlusPlus or DeepLabV3Plus
        The trained net of ``config.architecture`` (eval mode, on ``device_``).
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
        grid = network_grid(stack.shape, stack.spacing, image_size=c.image_size,
                            spacing_mm=c.spacing_mm)
        return prepare_images(stack.image, stack.slice_numbers, offsets=c.offsets,
                              image_size=grid, percentiles=c.percentiles)

    def _prepare(self, stacks, folder: Path, name: str):
        c = self.config
        return prepare_files(stacks, folder, name, image_size=c.image_size,
                             percentiles=c.percentiles, offsets=c.offsets,
                             spacing_mm=c.spacing_mm)

    def _prepare_shared(self, train_stacks, val_stacks, work: str | None):
        """Rank 0 prepares the slice files; every process gets their list (the
        broadcast doubles as the barrier). An error on rank 0 is raised everywhere."""
        result = None
        if work is not None:
            try:
                train = self._prepare(train_stacks, Path(work) / "train", "train_stacks")
                val = None
                if val_stacks:
                    val = self._prepare(val_stacks, Path(work) / "val", "val_stacks")
                    if val[1] != train[1]:
                        raise ValueError("val_stacks classes differ from train_stacks classes")
                result = ("ok", train, val)
            except Exception as exc:
                broadcast_object(("error", f"{type(exc).__name__}: {exc}", None))
                raise
        result = broadcast_object(result)
        if result[0] == "error":
            raise RuntimeError(f"rank 0 could not prepare the training data: {result[1]}")
        return result[1], result[2]

    def _loaders(self, train_files, val_files, classes, seed_shuffle: int, rank: int,
                 n_proc: int):
        c = self.config
        collate = PadCollate(2**c.depth)
        train_set = SliceFiles(train_files)
        if n_proc == 1:
            train_loader = DataLoader(
                train_set, batch_size=c.batch_size, shuffle=True, collate_fn=collate,
                generator=torch.Generator().manual_seed(int(seed_shuffle)),
                num_workers=c.loader_workers)
        else:
            sampler = DistributedSampler(train_set, num_replicas=n_proc, rank=rank,
                                         shuffle=True, seed=int(seed_shuffle))
            train_loader = DataLoader(train_set, batch_size=c.batch_size // n_proc,
                                      sampler=sampler, collate_fn=collate,
                                      num_workers=c.loader_workers)
        if val_files is None:
            return train_loader, None, None
        val_set = SliceFiles(val_files)
        if c.monitor == "val_score":
            # The score needs whole volumes: each process validates every n_proc-th
            # case-day (evaluate_net adds the sums over processes; a process left without
            # one adds zeros).
            mine = range(rank, len(val_files), n_proc)
            order = [i for v in mine for i in range(int(val_set.starts[v]),
                                                    int(val_set.starts[v + 1]))]
            volumes = VolumeScore([ValVolume(val_files[v].key, val_files[v].slice_numbers)
                                   for v in mine], classes)
        else:
            if len(val_set) < n_proc:
                raise ValueError(f"{len(val_set)} validation slices for {n_proc} processes")
            # Each process validates every n_proc-th slice; evaluate_net adds the sums.
            order, volumes = range(rank, len(val_set), n_proc), None
        return train_loader, DataLoader(val_set, batch_size=c.predict_batch_size,
                                        sampler=order, collate_fn=collate,
                                        num_workers=c.loader_workers), volumes

    def _augment(self):
        """The batch transform of training: crops and/or seeded augmentation."""
        c = self.config
        out = None if c.crop_size is None else (c.crop_size, c.crop_size)
        if c.augment:
            opts = {k: getattr(c, k) for k in ("crop_foreground", "hflip", "vflip", "rotate",
                                               "scale", "shift", "elastic", "gamma",
                                               "brightness", "contrast", "noise")}
        elif out is not None:
            opts = {"crop_foreground": c.crop_foreground, "rotate": 0.0, "scale": 0.0,
                    "shift": 0.0, "gamma": 0.0, "brightness": 0.0, "contrast": 0.0}
        else:
            return None

        def transform(xb, yb, gen, sizes):
            return augment_batch(xb, yb, gen, sizes=sizes, out_size=out, **opts)

        return transform

    def _make_net(self, n_classes: int, seed: int, foreground=None) -> torch.nn.Module:
        c = self.config
        args = (len(c.offsets), n_classes, c.base_channels, c.depth)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if c.architecture == "deeplabv3plus":
                # The native grid has no fixed side; 256 px is about a Kaggle slice.
                rates = aspp_rates(c.image_size or 256, c.depth)
                net = DeepLabV3Plus(*args, atrous_rates=rates, dropout=c.dropout)
            else:
                cls = UNetPlusPlus if c.architecture == "unetpp" else UNet
                net = cls(*args, up_mode=c.up_mode, dropout=c.dropout)
        if foreground is not None:
            p = np.clip(np.asarray(foreground, dtype=np.float64), 1e-3, 0.5)
            with torch.no_grad():
                net.head.bias.copy_(torch.as_tensor(np.log(p / (1 - p)), dtype=torch.float32))
        return net

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
        rank, n_proc = world()
        if c.batch_size % n_proc:
            raise ValueError(f"batch_size={c.batch_size} must be divisible by the number of "
                             f"processes ({n_proc}): it is the batch over all of them")
        seed_init, seed_shuffle, seed_fit = derive_seeds(int(c.random_state), 3)
        with contextlib.ExitStack() as cleanup:
            # Each scan is read, prepared and written to disk, then dropped; the loaders
            # read one slice at a time, so memory does not grow with the training set.
            # Under torch.distributed rank 0 prepares for all (one node, shared /tmp).
            work = None
            if rank == 0:
                work = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="gitract-unet-"))
            if n_proc > 1:
                # Leave the folder only when every process is done reading it.
                cleanup.callback(torch.distributed.barrier)
            (train_files, classes, foreground), val = self._prepare_shared(
                train_stacks, val_stacks, work)
            train_loader, val_loader, val_volumes = self._loaders(
                train_files, None if val is None else val[0], classes, seed_shuffle, rank,
                n_proc)
            net = self._make_net(len(classes), seed_init,
                                 foreground if c.init_prior else None)
            with _Threads(c.num_threads):
                history = fit_net(net, train_loader, val_loader,
                                  config=c.train_config(random_state=seed_fit),
                                  augment=self._augment(), val_volumes=val_volumes)
        self.net_ = net
        self.device_ = next(net.parameters()).device
        self.classes_ = classes
        self.history_ = history
        self.n_train_slices_ = int(sum(len(f.neighbours) for f in train_files))
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
        # The native grid (image_size None) is padded to a multiple of 2**depth with
        # zeros, as training batches are, and the prediction cropped back.
        x, pads = pad_to_multiple(x, 2**c.depth, mode="constant", axes=(2, 3))
        net, dev = self.net_, self.device_
        net.eval()
        out = np.empty((x.shape[0], len(self.classes_), *x.shape[2:]), dtype=np.float32)
        use_amp = c.amp and dev.type == "cuda"
        with _Threads(c.num_threads):
            for i in range(0, x.shape[0], c.predict_batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[i:i + c.predict_batch_size])).to(dev)
                if c.channels_last and dev.type == "cuda":
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with autocast(dev, use_amp):
                    p = torch.sigmoid(net(xb).float())
                    if c.tta:
                        p = 0.5 * (p + torch.sigmoid(net(xb.flip(-1)).float()).flip(-1))
                out[i:i + xb.shape[0]] = p.cpu().numpy()
        return resize_proba_back(crop_pads(out, pads, axes=(2, 3)), stack.shape)

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
