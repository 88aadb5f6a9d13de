"""Checkpoint files: atomic writes, ``weights_only`` reads."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from gitract.utils.io import atomic_path

__all__ = ["load_checkpoint", "save_checkpoint"]


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` (tensors, dicts, lists, str/int/float/bool/None) atomically.

    The file appears whole or not at all; it can be read with
    :func:`load_checkpoint`, which uses ``weights_only=True``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (no arbitrary code is run).

    Raises
    ------
    ValueError
        When the file is missing or not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise ValueError(f"{path}: cannot read the checkpoint ({exc})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: checkpoint holds a {type(payload).__name__}, not a dict")
    return payload
