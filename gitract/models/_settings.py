"""Settings of a torch training run (:class:`TrainConfig`) and of a segmentation track
(U-Net, U-Net++, DeepLabV3+: :class:`UNetConfig`), torch-free.

Torch-free, so that a config is checked before torch loads;
:mod:`gitract.models.train_torch` re-exports :class:`TrainConfig` next to the loop that
uses it. :class:`UNetConfig` *is* a :class:`TrainConfig` (its training options are that
class's fields, not copies), with the segmentation track's own defaults for three of them
and the net, data path and augmentation options added. :mod:`gitract.tracks.segmentation` registers it as
the settings of the kinds ``unet``, ``unetpp`` and ``deeplabv3plus``;
:class:`gitract.models.unet.UNetSegmenter` trains from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from gitract.models._unet_data import check_offsets
from gitract.utils.schema import (
    KeyProblem,
    at_least,
    between,
    check_dataclass,
    one_of,
    problem_of,
    show,
)

__all__ = ["ARCHITECTURES", "LOSSES", "MONITORS", "TrainConfig", "UNetConfig",
           "device_name_problem"]

#: Pixel terms of :func:`gitract.models.train_torch.segmentation_loss`.
LOSSES = ("bce_dice", "focal_dice")

#: Values that select the checkpoint, and whether larger or smaller is better.
MONITORS = {"val_score": "max", "val_dice": "max", "val_loss": "min", "train_loss": "min"}


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`gitract.models.train_torch.fit_net`.

    Parameters
    ----------
    max_epochs : int or None
        Epoch budget (None: no epoch limit).
    max_steps : int or None
        Budget in optimiser steps (batches); with ``max_epochs`` the first reached ends
        the run.
    max_minutes : float or None
        Wall-clock guard of the training loop in minutes (None: no time limit). With a
        step or epoch budget it only stops a run that is too slow; alone it is the budget
        (and the result then depends on the machine's speed).
    lr, weight_decay : float
        AdamW learning rate and weight decay.
    scheduler : {"cosine", "none"}
        Cosine decay of the learning rate to 1 % of ``lr`` after the warm-up, set before
        every batch from the share of the budget used at the end of that batch: the larger
        of the step share (of ``max_steps``) and the epoch share (of ``max_epochs``); the
        time share (of ``max_minutes``) only when neither is given.
    warmup_fraction : float in [0, 1)
        Linear warm-up of the learning rate from 0 over this share of the budget
        (:func:`gitract.models.train_torch.lr_at`).
    ema_decay : float in (0, 1) or None
        Keep an exponential moving average of the weights (and batch-norm statistics)
        with this decay, ramped up as ``min(decay, (1+n)/(10+n))`` after ``n`` steps;
        validation, the checkpoint and the returned net use the average. None: off.
    monitor : {"val_score", "val_dice", "val_loss", "train_loss"}
        Value that selects the checkpoint restored at the end; ``val_*`` falls back to
        ``train_loss`` without a validation loader. ``val_score`` is the competition score
        of the validation volumes (Dice and 3D Hausdorff at threshold 0.5; it needs the
        volumes, :class:`gitract.models.train_torch.VolumeScore`), ``val_dice`` the hard
        Dice pooled over validation pixels.
    patience : int or None
        Stop after this many epochs without improvement (None: never).
    bce_weight : float
        Loss = ``bce_weight * pixel term + (1 - bce_weight) * soft Dice loss``.
    loss : {"bce_dice", "focal_dice"}
        Pixel term: BCE or focal loss (:func:`gitract.models.train_torch.segmentation_loss`).
    focal_gamma : float
        Focusing exponent of the focal loss.
    grad_clip : float or None
        Clip the gradient norm to this value.
    device : str
        ``"auto"`` (cuda -> mps -> cpu) or a torch device name.
    amp : bool
        Mixed precision (float16 autocast + grad scaler); used on CUDA only.
    channels_last : bool
        Net and batches in channels-last memory format on CUDA (faster convolutions on
        tensor cores); ignored on the CPU.
    deterministic : bool
        ``torch.use_deterministic_algorithms(True)`` during the fit (restored after).
    random_state : int
        Seed of the global torch RNG inside the fit (dropout) and of the augmentation.
    checkpoint_path : str or None
        Also write the best checkpoint there (atomically) whenever it improves.
    progress : bool
        tqdm progress bars (one per epoch).

    Under ``torch.distributed`` (initialised, more than one process) :func:`fit_net`
    trains with DistributedDataParallel: the loaders must give each process its share
    (a ``DistributedSampler``); the budget counts optimiser steps, the same whatever the
    number of processes.
    """

    max_epochs: int | None = 20
    max_minutes: float | None = None
    max_steps: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    monitor: str = "val_dice"
    patience: int | None = None
    bce_weight: float = 0.5
    loss: str = "bce_dice"
    focal_gamma: float = 2.0
    warmup_fraction: float = 0.05
    ema_decay: float | None = None
    grad_clip: float | None = None
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    deterministic: bool = False
    random_state: int = 0
    checkpoint_path: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_epochs is None and self.max_minutes is None and self.max_steps is None:
            raise ValueError("give max_steps, max_epochs and/or max_minutes, got none")
        for name in ("max_epochs", "max_steps"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        if self.max_minutes is not None and not float(self.max_minutes) > 0:
            raise ValueError(f"max_minutes must be > 0 or None, got {self.max_minutes!r}")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {sorted(MONITORS)}, got {self.monitor!r}")
        if self.scheduler not in ("cosine", "none"):
            raise ValueError(f"scheduler must be 'cosine' or 'none', got {self.scheduler!r}")
        if not 0.0 <= self.bce_weight <= 1.0:
            raise ValueError(f"bce_weight must be in [0, 1], got {self.bce_weight!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if not self.focal_gamma >= 0:
            raise ValueError(f"focal_gamma must be >= 0, got {self.focal_gamma!r}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) or None, got {self.ema_decay!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ValueError(f"patience must be a positive int or None, got {self.patience!r}")


#: Networks the track can train (:mod:`gitract.models.nets`); the comparison's track
#: kinds of the same names set this field.
ARCHITECTURES = ("unet", "unetpp", "deeplabv3plus")

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def device_name_problem(value: Any) -> str | None:
    """Words for a device name that is not ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``."""
    if isinstance(value, str) and _DEVICE.match(value):
        return None
    return f"must be auto, cpu, cuda, cuda:N or mps, got {show(value)}"


#: Checks of single values that neither class makes itself (the budget, ``lr`` and the
#: loss are :class:`TrainConfig`'s own checks), named by key path in a config.
_RULES = {
    "device": device_name_problem, "up_mode": one_of(("transpose", "bilinear")),
    "architecture": one_of(ARCHITECTURES),
    "dropout": between(0.0, 1.0, open_high=True), "weight_decay": at_least(0.0),
    "percentiles": between(0.0, 100.0), "num_threads": at_least(1),
}


@dataclass(frozen=True)
class UNetConfig(TrainConfig):
    """Everything that defines a U-Net track run (net, data path, training budget).

    Parameters
    ----------
    architecture : {"unet", "unetpp", "deeplabv3plus"}
        The network: :class:`gitract.models.nets.UNet`,
        :class:`~gitract.models.nets.UNetPlusPlus` (nested dense skips) or
        :class:`~gitract.models.nets.DeepLabV3Plus` (ASPP, rates scaled to ``image_size``,
        or to 256 px on the native grid: :func:`gitract.models.nets.aspp_rates`). All
        three take the same 2.5D input and return logits of the input size, so the data
        path, recipe and prediction below are shared.
    image_size : int or None
        Side of the square grid every slice is resized to (divisible by ``2**depth``);
        None: the native grid (slices padded to a multiple of ``2**depth``, predictions
        cropped back, no resizing either way), or, with ``spacing_mm``, a fixed spacing.
    spacing_mm : float or None
        With ``image_size=None``: resample each stack so that a pixel covers this many mm
        (its ``SliceStack.spacing``), keeping organs their physical size whatever the
        field of view (:func:`gitract.models._unet_data.network_grid`); predictions are
        resized back to the stack's own grid. None: the native grid.
    crop_size : int or None
        Train on random square crops of this side (divisible by ``2**depth``) of the
        prepared slices; prediction always sees whole (padded) slices. None: whole slices.
    crop_foreground : float
        Probability that a training crop is centred on a labelled pixel.
    base_channels, depth, up_mode, dropout
        :class:`gitract.models.nets.UNet` options. Depth 4 by default: on the quick
        phantom run its 1/16 bottleneck (the whole slice as context, which tells the
        stomach from other round organs) raised the validation Dice from 0.57 to 0.64 at
        the same step budget and about the same time per step. The same options build
        the other architectures (DeepLabV3+ always up-samples bilinearly: ``up_mode``
        does not apply, and ``dropout`` follows its ASPP).
    offsets : tuple of int
        2.5D neighbour offsets by slice number (``len(offsets)`` input channels).
    percentiles : (float, float)
        Per-stack intensity clipping percentiles.
    batch_size : int
        Slices per optimiser step, over all processes: under ``torchrun`` with N
        processes each takes ``batch_size / N`` (it must divide), so a run makes the same
        optimiser steps on the same number of slices whatever N (raise ``batch_size``,
        and perhaps ``lr``, to use more GPUs for larger batches).
    max_steps, max_minutes, weight_decay, scheduler, patience, bce_weight
    loss, focal_gamma, warmup_fraction, grad_clip, device, amp, channels_last
    deterministic, random_state, checkpoint_path, progress
        The inherited :class:`~gitract.models.TrainConfig` fields, with its defaults
        except for these four:
    monitor : str, default "val_score"
        The checkpoint is chosen on the validation cases' competition score (Dice and 3D
        Hausdorff of each validation case-day on the network's grid), the score the run
        reports, not on pooled Dice: a checkpoint with stray components loses there.
    lr : float, default 2e-3
    ema_decay : float or None, default 0.99
        Exponential moving average of the weights (validation and the saved model use
        it); None: off.
    max_epochs : int or None, default 40
    init_prior : bool
        Start the output bias at the logit of each class's share of training pixels
        (about -4.5 here), instead of 0 (probability 0.5 everywhere): AdamW moves a bias
        by about ``lr`` per step, so from 0 a few hundred steps go into learning that
        organs are rare.
    augment : bool
        Seeded augmentation of training batches (:func:`augment_batch`).
    hflip, vflip : float
        Flip probabilities, off by default: the abdomen is not mirror-symmetric (stomach
        on the patient's left, liver on the right), so a flipped slice is not a plausible
        one and an organ's side helps to tell it (:mod:`gitract.models.unet._augment`).
    rotate, scale, shift : float
        Affine ranges: +-degrees, +-relative scale, +-fraction of the side.
    elastic : float
        Elastic deformation: displacement s.d. at 5x5 control points, as a fraction of
        the half side (0: none).
    gamma, brightness, contrast : float
        Intensity ranges: gamma in ``[1/(1+gamma), 1+gamma]``, +-brightness, +-contrast.
    noise : float
        Largest s.d. of additive Gaussian noise (intensities in [0, 1]).
    tta : bool
        Average the prediction with that of the left-right flipped input (only sensible
        when training used ``hflip``).
    num_threads : int or None
        torch intra-op threads during fit and predict (None: leave torch's setting).
    predict_batch_size : int
    loader_workers : int
        DataLoader worker processes reading the prepared training slices (0: in this
        process); the batches, and so the weights, do not depend on it.
    """

    # The segmentation track's own defaults of four TrainConfig fields.
    max_epochs: int | None = 40
    lr: float = 2e-3
    ema_decay: float | None = 0.99
    monitor: str = "val_score"
    architecture: str = "unet"
    image_size: int | None = 256
    spacing_mm: float | None = None
    crop_size: int | None = None
    crop_foreground: float = 0.33
    base_channels: int = 16
    depth: int = 4
    up_mode: str = "transpose"
    dropout: float = 0.0
    offsets: tuple[int, ...] = (-2, 0, 2)
    percentiles: tuple[float, float] = (0.5, 99.5)
    batch_size: int = 8
    init_prior: bool = True
    augment: bool = True
    hflip: float = 0.0
    vflip: float = 0.0
    rotate: float = 15.0
    scale: float = 0.15
    shift: float = 0.0625
    elastic: float = 0.0
    gamma: float = 0.3
    brightness: float = 0.1
    contrast: float = 0.1
    noise: float = 0.0
    tta: bool = False
    num_threads: int | None = None
    predict_batch_size: int = 8
    loader_workers: int = 0

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, "
                             f"got {self.architecture!r}")
        object.__setattr__(self, "offsets", check_offsets(self.offsets))
        object.__setattr__(self, "percentiles", tuple(float(p) for p in self.percentiles))
        for name in ("image_size", "crop_size", "base_channels", "depth", "batch_size",
                     "predict_batch_size"):
            value = getattr(self, name)
            if value is None and name in ("image_size", "crop_size"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("image_size", "crop_size"):
            value = getattr(self, name)
            if value is not None and value % 2**self.depth:
                raise ValueError(f"{name} must be divisible by 2**depth={2**self.depth}, "
                                 f"got {value!r}")
        if isinstance(self.loader_workers, bool) or not isinstance(self.loader_workers, int) \
                or self.loader_workers < 0:
            raise ValueError(f"loader_workers must be an int >= 0, got {self.loader_workers!r}")
        for name in ("hflip", "vflip", "crop_foreground"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)!r}")
        if self.spacing_mm is not None:
            if self.image_size is not None:
                raise ValueError(f"spacing_mm={self.spacing_mm!r} needs image_size=None, got "
                                 f"image_size={self.image_size!r}")
            if isinstance(self.spacing_mm, bool) or not self.spacing_mm > 0:
                raise ValueError(f"spacing_mm must be > 0 or None, got {self.spacing_mm!r}")
        if not 0.0 <= self.scale < 1.0:
            raise ValueError(f"scale must be in [0, 1), got {self.scale!r}")
        for name in ("rotate", "shift", "elastic", "gamma", "brightness", "contrast",
                     "noise"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not isinstance(self.init_prior, bool):
            raise ValueError(f"init_prior must be a bool, got {self.init_prior!r}")
        super().__post_init__()  # the training options

    def train_config(self, **overrides) -> TrainConfig:
        """The plain :class:`TrainConfig` part of these settings (``overrides`` replace
        single fields)."""
        return TrainConfig(**{**{f.name: getattr(self, f.name) for f in fields(TrainConfig)},
                              **overrides})

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, path: str = "") -> UNetConfig:
        """Settings from a mapping of fields (a track's ``params``, or :meth:`to_dict`'s
        output); the defaults fill the rest.

        Raises
        ------
        KeyProblem
            A ``ValueError`` naming the first bad key by its path under ``path``
            (``tracks[2].params.max_steps: must be >= 1, got 0``).
        """
        checked = check_dataclass(cls, data, path, rules=_RULES)
        try:
            return cls(**checked)
        except (TypeError, ValueError) as exc:
            raise problem_of(exc, [f.name for f in fields(cls)], path) from None
