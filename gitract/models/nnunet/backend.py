"""Plan, preprocess, train and predict with nnunetv2's Python API.

:func:`fit_nnunet` writes the training and validation scans as an nnU-Net raw dataset
in a working folder (:mod:`gitract.data.nnunet_export`: one volume per scan, region-based
labels), runs nnU-Net's fingerprint, planning (then the patch and batch size overrides)
and preprocessing for one configuration (a target spacing given to the planner, which
then plans patch and network for it: a coarser one makes a CPU run affordable), writes the one fold (train / val scans) as
``splits_final.json`` and trains :class:`GitractTrainer` on it; it returns the trained
network's weights and nnU-Net's plans in memory, so the working folder can go.
:class:`NNUNetModel` predicts a scan's per-class probabilities through
``nnUNetPredictor`` (nnU-Net's preprocessing, sliding window, mirroring).
Import only after :func:`gitract.models.nnunet.use_folders`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from nnunetv2.experiment_planning.plan_and_preprocess_api import (
    extract_fingerprint_dataset,
    plan_experiment_dataset,
    preprocess_dataset,
)
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from gitract.data.index import ScanSource
from gitract.data.nnunet_export import (
    DEFAULT_SLICE_THICKNESS,
    FILE_ENDING,
    dataset_json,
    write_scan,
)
from gitract.data.record import SliceStack
from gitract.models.nnunet._trainer import GitractTrainer

__all__ = ["NNUNetModel", "fit_nnunet"]

DATASET_ID = 501
DATASET = f"Dataset{DATASET_ID:03d}_gitract"


def _override(plans_file: Path, configuration: str, patch_size: Sequence[int] | None,
              batch_size: int | None) -> None:
    plans = json.loads(plans_file.read_text())
    if configuration not in plans["configurations"]:
        raise ValueError(f"configuration: nnU-Net planned no {configuration!r} for this "
                         f"data (it planned {', '.join(plans['configurations'])})")
    conf = plans["configurations"][configuration]
    if patch_size is not None:
        strides = np.prod(np.asarray(conf["architecture"]["arch_kwargs"]["strides"]), axis=0)
        if len(patch_size) != len(conf["patch_size"]) or any(
                p % s for p, s in zip(patch_size, strides, strict=True)):
            raise ValueError(f"patch_size: {configuration} needs {len(conf['patch_size'])} "
                             f"sides divisible by {[int(s) for s in strides]} (the planned "
                             f"network's strides), got {list(patch_size)}")
        conf["patch_size"] = [int(p) for p in patch_size]
    if batch_size is not None:
        conf["batch_size"] = int(batch_size)
    plans_file.write_text(json.dumps(plans, indent=2))


def fit_nnunet(train: Sequence[ScanSource], val: Sequence[ScanSource], classes: Sequence[str],
               work: Path, *, configuration: str, epochs: int, iterations_per_epoch: int,
               val_iterations_per_epoch: int, seed: int, device: torch.device,
               patch_size: Sequence[int] | None = None, batch_size: int | None = None,
               spacing: Sequence[float] | None = None, max_minutes: float | None = None
               ) -> dict:
    """Train nnU-Net on ``train`` (validating on ``val``, else on ``train``) in ``work``;
    nnU-Net's console output goes to ``work/nnunet.log``.

    Returns
    -------
    dict
        ``plans``, ``dataset_json``, ``configuration``, ``weights`` (state dict),
        ``mirroring`` (the axes nnU-Net allows at inference), ``curve`` (per epoch),
        ``stopped`` (``budget`` or ``max_minutes``).
    """
    raw = work / "raw" / DATASET
    images, labels = raw / "imagesTr", raw / "labelsTr"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    idents = {part: [write_scan(s, images=images, labels=labels)["identifier"] for s in scans]
              for part, scans in (("train", train), ("val", val))}
    meta = dataset_json(classes, len(train) + len(val))
    # The files listed: nnU-Net would otherwise list the folder with a fork-based Pool,
    # which can deadlock in a process that already runs threads (torch's, a test suite's).
    meta["dataset"] = {i: {"images": [f"imagesTr/{i}_0000{FILE_ENDING}"],
                           "label": f"labelsTr/{i}{FILE_ENDING}"}
                       for i in idents["train"] + idents["val"]}
    (raw / "dataset.json").write_text(json.dumps(meta, indent=2))
    pre = work / "preprocessed" / DATASET
    # nnU-Net's progress plot sets seaborn's style (large fonts) for the whole process:
    # the context gives the report's figures their settings back.
    with open(work / "nnunet.log", "a") as log, contextlib.redirect_stdout(log), \
            matplotlib.rc_context():
        # nnU-Net reads its augmentation processes from the environment when called: the
        # planner sizes torch threads by it (>= 1), training runs augmentation in this
        # process at 0 (one process per track, like every other track here).
        os.environ["nnUNet_n_proc_DA"] = "1"
        extract_fingerprint_dataset(DATASET_ID, num_processes=1, check_dataset_integrity=False,
                                    clean=True, verbose=False, show_progress_bar=False)
        _, plans_name = plan_experiment_dataset(
            DATASET_ID, overwrite_target_spacing=None if spacing is None else
            tuple(float(v) for v in spacing))
        _override(pre / f"{plans_name}.json", configuration, patch_size, batch_size)
        preprocess_dataset(DATASET_ID, plans_name, configurations=(configuration,),
                           num_processes=(1,), verbose=False, show_progress_bar=False)
        (pre / "splits_final.json").write_text(json.dumps(
            [{"train": idents["train"], "val": idents["val"] or idents["train"]}]))
        plans = json.loads((pre / f"{plans_name}.json").read_text())
        plans["continue_training"] = False
        os.environ["nnUNet_n_proc_DA"] = "0"
        trainer = GitractTrainer(plans, configuration, 0,
                                 json.loads((pre / "dataset.json").read_text()), device)
        trainer.set_budget(epochs=epochs, iterations_per_epoch=iterations_per_epoch,
                           val_iterations_per_epoch=val_iterations_per_epoch, seed=seed,
                           max_minutes=max_minutes)
        trainer.run_training()
    final = torch.load(Path(trainer.output_folder) / "checkpoint_final.pth",
                       map_location="cpu", weights_only=False)
    return {"plans": trainer.plans_manager.plans, "dataset_json": trainer.dataset_json,
            "configuration": configuration, "weights": final["network_weights"],
            "mirroring": final.get("inference_allowed_mirroring_axes"),
            "curve": trainer.curve(), "stopped": trainer.stopped}


class NNUNetModel:
    """A trained nnU-Net (the dict of :func:`fit_nnunet`) that predicts per-class
    probabilities of a scan through ``nnUNetPredictor``."""

    def __init__(self, trained: dict, *, device: torch.device, mirroring: bool = True,
                 tile_step_size: float = 0.5) -> None:
        plans = PlansManager(trained["plans"])
        conf = plans.get_configuration(trained["configuration"])
        djson = trained["dataset_json"]
        network = nnUNetTrainer.build_network_architecture(
            plans, conf, determine_num_input_channels(plans, conf, djson),
            plans.get_label_manager(djson).num_segmentation_heads,
            enable_deep_supervision=False)
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            self.predictor = nnUNetPredictor(
                tile_step_size=tile_step_size, use_mirroring=mirroring,
                perform_everything_on_device=device.type == "cuda", device=device,
                verbose=False, allow_tqdm=False)
        self.predictor.manual_initialization(network.to(device), plans, conf,
                                             [trained["weights"]], djson,
                                             GitractTrainer.__name__, trained["mirroring"])

    def predict_proba_stack(self, stack: SliceStack) -> np.ndarray:
        """(S, H, W, C) float32 probabilities, one channel per class (sigmoid regions)."""
        rows, cols = stack.spacing
        spacing = [float(stack.slice_thickness or DEFAULT_SLICE_THICKNESS), float(rows),
                   float(cols)]
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            _, proba = self.predictor.predict_single_npy_array(
                stack.image[None].astype(np.float32), {"spacing": spacing}, None, None, True)
        return np.ascontiguousarray(np.moveaxis(np.asarray(proba, dtype=np.float32), 0, -1))

