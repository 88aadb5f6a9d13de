"""What a run records about where it ran and on what: ``env.json`` and the dataset."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from gitract.config import ExperimentConfig

SYNTHETIC_KINDS = ("phantom",)


def environment_info() -> dict[str, Any]:
    """Package versions, git SHA and the machine (CPU / GPU) for ``env.json``."""
    from importlib import metadata

    versions = {}
    for pkg in ("gitract", "numpy", "pandas", "scipy", "scikit-learn", "scikit-image",
                "lightgbm", "torch", "joblib", "matplotlib"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    here = Path(__file__).resolve().parent
    sha = dirty = None
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=False, cwd=here).stdout.strip() or None
        if sha:
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, check=False, cwd=here)
            dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    except OSError:
        pass
    device, gpu, cuda, cudnn, threads = "cpu", None, None, None, None
    try:
        import torch

        threads = torch.get_num_threads()
        cuda = torch.version.cuda  # the CUDA the build targets (None: a CPU-only build)
        if torch.backends.cudnn.is_available():
            cudnn = torch.backends.cudnn.version()
        if torch.cuda.is_available():
            device = "cuda"
            gpu = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover
        pass
    return {
        "versions": versions,
        "git_sha": sha,
        "git_dirty": dirty,
        "cuda": cuda,
        "cudnn": cudnn,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "device": device,
        "gpu": gpu,
    }


def dataset_description(config: ExperimentConfig) -> dict[str, Any]:
    data = config.data
    return {
        "kind": data.kind,
        "path": data.path,
        "phantom": dict(data.phantom),
        "options": dict(data.options),
        "max_cases": data.max_cases,
        "slice_step": data.slice_step,
        "synthetic": data.kind in SYNTHETIC_KINDS,
    }
