"""nnU-Net v2 run through its own package (the optional extra ``nnunet``).

Importing this package imports neither torch nor nnunetv2: :func:`missing_extra` says
whether the extra is installed, :func:`use_folders` points nnU-Net's three folders
(``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results``) at a working folder before
nnunetv2 is imported, and :mod:`gitract.models.nnunet.backend` (imported when a track is
fitted or loaded) plans, preprocesses, trains (:mod:`._trainer`) and predicts.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

__all__ = ["INSTALL", "missing_extra", "use_folders"]

#: How to install the extra (the torch pin keeps the CPU build; without it pip pulls CUDA).
INSTALL = "pip install -e '.[nnunet]' 'torch==2.13.0'"


def missing_extra() -> str | None:
    """One line saying how to install nnunetv2 when it is not importable, else None."""
    try:
        found = importlib.util.find_spec("nnunetv2") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else (f"nnU-Net is not installed (the optional extra): {INSTALL}")


def use_folders(work: str | Path) -> Path:
    """Set nnU-Net's environment for a run in ``work``: its raw, preprocessed and results
    folders there, no ``torch.compile``. Call before nnunetv2 is imported."""
    work = Path(work)
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"),
                     ("nnUNet_results", "results")):
        (work / sub).mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(work / sub)
    os.environ["nnUNet_compile"] = "false"
    return work
