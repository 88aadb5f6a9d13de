"""Track kind ``nnunet``: nnU-Net v2, the field's self-configuring reference, run through
its own package (the optional extra: ``pip install -e '.[nnunet]' 'torch==2.13.0'``).

The adapter trains on the fold's training scans with nnU-Net's own planning,
preprocessing, network, loss, augmentation and schedule (:mod:`gitract.models.nnunet`),
validating on the fold's validation scans, and predicts each scan's per-class
probabilities (sigmoid outputs of region-based training, so overlapping classes stay
overlapping) through ``nnUNetPredictor``; thresholds, scoring and reports are the
engine's, as for every track. nnU-Net's raw, preprocessed and results folders sit in a
working folder under the cache folder (``GITRACT_CACHE``, default ``cache/``), removed
after training: the step's model folder keeps the weights, plans and learning curve.

The settings give the configuration (``2d`` or ``3d_fullres``), the budget (nnU-Net's
defaults: 1000 epochs of 250 iterations; ``max_minutes`` stops on the clock too), patch
size, batch size and target spacing overrides for CPU runs, test-time mirroring, device, threads and seed.
Without the extra a config asking for the track ends in one line saying how to install it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from gitract.data.record import DataError, SliceStack
from gitract.models import device_name_problem, select_device
from gitract.models.nnunet import missing_extra, use_folders
from gitract.paths import cache_dir
from gitract.tracks._registry import register
from gitract.utils.io import write_text_atomic
from gitract.utils.schema import at_least, check_dataclass, one_of, problem_of

__all__ = ["NNUNetAdapter", "NNUNetSettings"]

CONFIGURATIONS = ("2d", "3d_fullres")
_RULES = {"configuration": one_of(CONFIGURATIONS), "epochs": at_least(1),
          "iterations_per_epoch": at_least(1), "val_iterations_per_epoch": at_least(1),
          "max_minutes": at_least(0.01), "patch_size": at_least(8), "batch_size": at_least(1),
          "spacing": at_least(0.001),
          "num_threads": at_least(1), "device": device_name_problem}


@dataclass(frozen=True)
class NNUNetSettings:
    """Settings of a track of kind ``nnunet`` (defaults: nnU-Net's own budget).

    Attributes
    ----------
    configuration : str
        ``2d`` (slice by slice) or ``3d_fullres`` (the case-day volume).
    epochs, iterations_per_epoch, val_iterations_per_epoch : int
        nnU-Net's budget (1000, 250, 50 by default).
    max_minutes : float or None
        Also stop after the epoch in which this much training time ran out.
    patch_size : tuple of int or None
        Overrides the planned patch (sides divisible by the planned network's strides).
    batch_size : int or None
        Overrides the planned batch size.
    spacing : (float, float, float) or None
        Target spacing in mm (slice, rows, columns) given to nnU-Net's planner in place
        of the data's median (its 2d configuration uses the last two): it plans patch and
        network for the resampled images and predicts back at the scan's own spacing, so
        a coarser one makes a CPU run affordable (fewer pixels per slice). In 2d the
        slices keep their own distance; the first value must still be the largest,
        since the planner cuts 2d slices across the coarsest axis of the target.
    mirroring : bool
        nnU-Net's test-time mirroring (on by default; off is faster on a CPU).
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    num_threads : int or None
        Torch CPU threads (None: torch's default).
    random_state : int
        Seed of torch, numpy and random for training (the run's track seed by default).
    """

    configuration: str = "2d"
    epochs: int = 1000
    iterations_per_epoch: int = 250
    val_iterations_per_epoch: int = 50
    max_minutes: float | None = None
    patch_size: tuple[int, ...] | None = None
    batch_size: int | None = None
    spacing: tuple[float, float, float] | None = None
    mirroring: bool = True
    device: str = "auto"
    num_threads: int | None = None
    random_state: int = 0

    def __post_init__(self) -> None:
        problem = missing_extra()
        if problem is not None:
            raise ValueError(problem)
        if self.configuration == "2d" and self.spacing is not None and \
                self.spacing[0] < max(self.spacing[1:]):
            raise ValueError(f"spacing: in 2d the slice spacing (first) must be at least the "
                             f"in-plane ones (nnU-Net slices along the coarsest axis), got "
                             f"{list(self.spacing)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, path: str = "") -> NNUNetSettings:
        """Settings from a track's params; a bad key is named by its path."""
        checked = check_dataclass(cls, data, path, rules=_RULES)
        try:
            return cls(**checked)
        except (TypeError, ValueError) as exc:
            raise problem_of(exc, [f.name for f in fields(cls)], path) from None


def _backend():
    """:mod:`gitract.models.nnunet.backend` (torch and nnunetv2), or one line saying how to
    install the extra."""
    problem = missing_extra()
    if problem is not None:
        raise DataError(problem)
    import gitract.models.nnunet.backend as backend  # nnunetv2 only for this track

    return backend


class NNUNetAdapter:
    """nnU-Net behind the engine's face."""

    def __init__(self, settings: NNUNetSettings, *, random_state: int) -> None:
        self.settings = settings
        self.random_state = random_state
        self.trained_: dict | None = None
        self._model = None
        self._fit_seconds = math.nan

    def __getstate__(self) -> dict:  # workers rebuild the predictor from the weights
        return {**self.__dict__, "_model": None}

    def _device(self):
        import torch

        if self.settings.num_threads is not None:
            torch.set_num_threads(self.settings.num_threads)
        return select_device(self.settings.device)

    def fit(self, index, train_keys: Sequence[str], val_keys: Sequence[str], *,
            parallel=None) -> NNUNetAdapter:
        start = time.perf_counter()
        s = self.settings
        (cache_dir() / "nnunet").mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="fit-", dir=cache_dir() / "nnunet"))
        try:
            use_folders(work)
            self.trained_ = _backend().fit_nnunet(
                [index.source(k) for k in train_keys], [index.source(k) for k in val_keys],
                index.classes, work, configuration=s.configuration, epochs=s.epochs,
                iterations_per_epoch=s.iterations_per_epoch,
                val_iterations_per_epoch=s.val_iterations_per_epoch, seed=s.random_state,
                device=self._device(), patch_size=s.patch_size, batch_size=s.batch_size,
                spacing=s.spacing, max_minutes=s.max_minutes)
            self.trained_["log"] = (work / "nnunet.log").read_text(errors="replace")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._model = None
        self._fit_seconds = time.perf_counter() - start
        return self

    def predict_proba_stack(self, stack: SliceStack):
        if self._model is None:
            self._model = _backend().NNUNetModel(self.trained_, device=self._device(),
                                                 mirroring=self.settings.mirroring)
        return self._model.predict_proba_stack(stack)

    @property
    def fit_seconds(self) -> float:
        return float(self._fit_seconds)

    @property
    def model_bytes(self) -> int:
        # nnU-Net's decoder holds the encoder too: count each tensor's storage once
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                    for t in self.trained_["weights"].values()}
        return int(sum(storages.values()))

    @property
    def training(self) -> dict:
        """Budget, iterations, why training stopped, the epoch whose weights are kept
        (the last: nnU-Net predicts with its final checkpoint), and the per-epoch curve
        (``val_pseudo_dice``: nnU-Net's pseudo Dice on validation patches)."""
        s, curve = self.settings, self.trained_["curve"]
        return {"budget": {"epochs": s.epochs, "iterations_per_epoch": s.iterations_per_epoch,
                           "max_minutes": s.max_minutes},
                "epochs": len(curve), "steps": len(curve) * s.iterations_per_epoch,
                "stopped": self.trained_["stopped"],
                "best_epoch": len(curve) or None,  # nnU-Net's way: the final weights
                "curve": [{**e, "step": e["epoch"] * s.iterations_per_epoch} for e in curve]}

    def save(self, directory: Path) -> None:
        import torch

        directory.mkdir(parents=True, exist_ok=True)
        t = self.trained_
        torch.save({"weights": t["weights"], "mirroring": t["mirroring"]},
                   directory / "nnunet.pt")
        meta = {k: t[k] for k in ("plans", "dataset_json", "configuration", "curve", "stopped")}
        write_text_atomic(directory / "nnunet.json",
                          json.dumps({**meta, "fit_seconds": self._fit_seconds}, indent=1))
        write_text_atomic(directory / "nnunet.log", t.get("log", ""))

    def load(self, directory: Path, *, device: str | None = None,
             num_threads: int | None = None) -> NNUNetAdapter:
        """Read a saved track; ``device`` and ``num_threads`` override the settings."""
        import torch

        _backend()
        changes = {k: v for k, v in (("device", device), ("num_threads", num_threads))
                   if v is not None}
        self.settings = dataclasses.replace(self.settings, **changes)
        meta = json.loads((directory / "nnunet.json").read_text())
        saved = torch.load(directory / "nnunet.pt", map_location="cpu", weights_only=False)
        self._fit_seconds = meta.pop("fit_seconds", math.nan)
        self.trained_ = {**meta, **saved}
        self._model = None
        return self


register("nnunet", settings=NNUNetSettings, adapter=NNUNetAdapter, device_key="device")
