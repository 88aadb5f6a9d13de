"""Data and report roots, from environment variables.

``GITRACT_SHARED_DATA`` points at the folder of real data sets (default ``../shared/data``
next to the repository); ``GITRACT_REPORTS`` at the reports folder (default ``reports/``).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """Folder holding the real data sets (read in place, never copied)."""
    env = os.environ.get("GITRACT_SHARED_DATA")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data"


def reports_dir() -> Path:
    """Folder where experiments write their run folders."""
    return Path(os.environ.get("GITRACT_REPORTS", REPO_ROOT / "reports"))


def cache_dir() -> Path:
    """Folder for derived data (phantoms, caches); ignored by git."""
    return Path(os.environ.get("GITRACT_CACHE", REPO_ROOT / "cache"))
