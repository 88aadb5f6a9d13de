"""Options and record of a training run: :class:`TrainConfig` (torch-free, in
:mod:`gitract.models._settings`), :class:`FitHistory`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from gitract.models._settings import MONITORS as _MONITORS
from gitract.models._settings import TrainConfig

__all__ = ["FitHistory", "TrainConfig"]


@dataclass
class FitHistory:
    """What :func:`fit_net` did.

    Attributes
    ----------
    epochs : list of dict
        One record per epoch: ``epoch`` (1-based), ``train_loss``, ``val_loss``,
        ``val_dice`` (mean over classes of the hard Dice at 0.5 over the whole validation
        set; classes absent from truth and prediction left out), ``val_dice_per_class``,
        ``lr`` (at the last batch), ``seconds``, ``n_seen`` (training slices seen),
        ``step`` (optimiser steps done by the end of the epoch).
    monitor : str
        The monitored value actually used.
    best_epoch : int or None
        Epoch whose weights were restored.
    best_value : float or None
    stopped : str
        ``"max_steps"``, ``"max_epochs"``, ``"max_minutes"`` (the time guard fired) or
        ``"patience"``.
    steps : int
        Optimiser steps done.
    seconds : float
        Wall-clock time of the loop.
    device : str
    amp : bool
        Whether mixed precision was used.
    world_size : int
        Processes that trained together (DistributedDataParallel when > 1).
    ema : bool
        Whether the weights are an exponential moving average.
    """

    epochs: list[dict] = field(default_factory=list)
    monitor: str = "val_dice"
    best_epoch: int | None = None
    best_value: float | None = None
    stopped: str = ""
    steps: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    amp: bool = False
    world_size: int = 1
    ema: bool = False

    def to_dict(self) -> dict:
        """JSON-ready copy (NaN becomes None)."""

        def _clean(v):
            if isinstance(v, float) and math.isnan(v):
                return None
            if isinstance(v, list):
                return [_clean(x) for x in v]
            if isinstance(v, dict):
                return {k: _clean(x) for k, x in v.items()}
            return v

        return _clean(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> FitHistory:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
