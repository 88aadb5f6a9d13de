"""Options of a torch training run (:class:`TrainConfig`), without importing torch.

The settings of a segmentation track (:class:`gitract.models.UNetConfig`) extend it, and
the config checks read both before any data (or torch) is loaded;
:mod:`gitract.models.train_torch` re-exports it next to the loop that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LOSSES", "MONITORS", "TrainConfig"]

#: Pixel terms of :func:`gitract.models.train_torch.segmentation_loss`.
LOSSES = ("bce_dice", "focal_dice")

#: Values that select the checkpoint, and whether larger or smaller is better.
MONITORS = {"val_dice": "max", "val_loss": "min", "train_loss": "min"}


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
    monitor : {"val_dice", "val_loss", "train_loss"}
        Value that selects the checkpoint restored at the end; ``val_*`` falls back to
        ``train_loss`` without a validation loader.
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
