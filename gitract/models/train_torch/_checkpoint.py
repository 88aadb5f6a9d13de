"""Checkpoint files: atomic writes, ``weights_only`` reads."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from gitract.data.record import DataError
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
    DataError
        (a ``ValueError``) When the file is missing or not a checkpoint; names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read the checkpoint (truncated or not a "
                        f"checkpoint: {first})") from None
    if not isinstance(payload, dict):
        raise DataError(f"{path}: checkpoint holds a {type(payload).__name__}, not a dict")
    return payload
